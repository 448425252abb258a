"""The deploy-side state full deploys use: each site's recorded revision (revision.py) and the
fleet hold that keeps a site's groups still while a deploy runs (fleet_hold.py, hold_claim.py).
"""
