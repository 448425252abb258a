"""Fault switches for the sandbox's Auto Scaling: throttled calls and duplicate SQS deliveries.

The switches live in the installed SandboxState (state.py, where the rules are described);
these functions are the names tests and the control endpoint call them by.
"""

from __future__ import annotations

from helper.sandbox.aws.state import ThrottleRule, current

__all__ = ["ThrottleRule", "throttle", "stop_throttling", "set_duplicate_delivery", "snapshot", "clear"]


def throttle(action: str, fraction: float = 1.0, *, every_nth: int | None = None, seed: int | None = None) -> None:
    """Answer `fraction` of calls to the Auto Scaling `action` (e.g. "CompleteLifecycleAction")
    with Throttling, or every `every_nth`th call when that is given."""
    current().faults.throttle(action, fraction, every_nth=every_nth, seed=seed)


def stop_throttling(action: str | None = None) -> None:
    current().faults.stop_throttling(action)


def set_duplicate_delivery(enabled: bool) -> None:
    """Send every lifecycle notification to SQS twice, as at-least-once delivery may."""
    current().faults.set_duplicate_delivery(enabled)


def snapshot() -> dict:
    return current().faults.snapshot()


def clear() -> None:
    current().faults.clear()
