"""The scale-up consumer: receive -> parse -> route -> batch -> deploy -> complete -> delete.

loop.py receives and routes; deployment.py follows one build; claims.py is Auto Scaling's side
of it (check, keep alive, complete); parked.py keeps the launches an open breaker parks.
"""
