"""Operator commands: hooks install/remove, iam-policy, doctor."""
