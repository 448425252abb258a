"""The per-site breaker: its state and rules as group tags (state.py), the consumer's view of the
breakers (sites.py), and the alerts an opening or a near timeout sends (alerts.py).

Its holding of new launches has its own word, "park" (helper/consumer/parked.py), apart from the
fleet hold of a full deploy (helper/deploys/fleet_hold.py).
"""
