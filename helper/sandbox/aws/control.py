"""The sandbox's switches as one JSON document, for the HTTP control endpoint.

    GET    <url>/_sandbox/faults   -> the current document
    POST   <url>/_sandbox/faults   {"throttle": {"CompleteLifecycleAction": {"every_nth": 1}},
                                    "duplicate_delivery": true, "delivery_shape": "sns", "time_scale": 60}
                                   -> merges the keys given (a throttle entry of null removes it)
    DELETE <url>/_sandbox/faults   -> back to defaults (no faults, "direct", the install-time scale)

A throttle entry takes "fraction" (0..1, default 1), "every_nth" (deterministic) and "seed".
"""

from __future__ import annotations

from typing import Any

from helper.sandbox.aws.notify import SHAPES
from helper.sandbox.aws.state import ThrottleRule, current

THROTTLE_KEYS = {"fraction", "every_nth", "seed"}
DOCUMENT_KEYS = {"throttle", "duplicate_delivery", "delivery_shape", "time_scale"}


def state() -> dict[str, Any]:
    sandbox = current()
    return {**sandbox.faults.snapshot(), "delivery_shape": sandbox.delivery_shape, "time_scale": sandbox.clock.scale}


def apply(document: Any) -> dict[str, Any]:
    """Validate the whole document first, so a bad one changes nothing; raises ValueError."""
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object")
    unknown = set(document) - DOCUMENT_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; expected some of {sorted(DOCUMENT_KEYS)}")
    throttles = document.get("throttle", {})
    if not isinstance(throttles, dict):
        raise ValueError('"throttle" must map an action name to a rule or null')
    for action, rule in throttles.items():
        if rule is not None and (not isinstance(rule, dict) or set(rule) - THROTTLE_KEYS):
            raise ValueError(f"throttle rule for {action} must be null or an object with {sorted(THROTTLE_KEYS)}")
        if rule is not None:
            ThrottleRule(action=action, **rule)  # validates the values
    if "delivery_shape" in document and document["delivery_shape"] not in SHAPES:
        raise ValueError(f"delivery_shape must be one of {SHAPES}")
    if "time_scale" in document and not (
        isinstance(document["time_scale"], (int, float)) and document["time_scale"] > 0
    ):
        raise ValueError("time_scale must be a number > 0")

    sandbox = current()
    for action, rule in throttles.items():
        if rule is None:
            sandbox.faults.stop_throttling(action)
        else:
            sandbox.faults.throttle(action, **rule)
    if "duplicate_delivery" in document:
        sandbox.faults.set_duplicate_delivery(bool(document["duplicate_delivery"]))
    if "delivery_shape" in document:
        sandbox.set_delivery_shape(document["delivery_shape"])
    if "time_scale" in document:
        sandbox.clock.set_scale(document["time_scale"])
    return state()


def clear() -> dict[str, Any]:
    current().reset_switches()
    return state()
