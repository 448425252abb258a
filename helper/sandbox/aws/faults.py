"""Fault switches for the sandbox's Auto Scaling: throttled calls and duplicate SQS deliveries.

Throttling answers exactly as AWS does under load (HTTP 400, query-protocol XML error,
Code `Throttling`, Message `Rate exceeded`); see lifecycle.py for where it is applied.
Rules are deterministic when asked: `every_nth=N` throttles calls N, 2N, ...; `fraction`
with `seed` draws from its own seeded RNG.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

_guard = threading.Lock()


@dataclass
class ThrottleRule:
    action: str
    fraction: float = 1.0
    every_nth: int | None = None
    seed: int | None = None
    calls: int = 0
    throttled: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be within 0..1, got {self.fraction}")
        if self.every_nth is not None and self.every_nth < 1:
            raise ValueError(f"every_nth must be >= 1, got {self.every_nth}")
        self._rng = random.Random(self.seed)

    def hit(self) -> bool:
        self.calls += 1
        if self.every_nth is not None:
            throttle = self.calls % self.every_nth == 0
        else:
            throttle = self._rng.random() < self.fraction
        self.throttled += throttle
        return throttle

    def describe(self) -> dict:
        return {
            "fraction": self.fraction,
            "every_nth": self.every_nth,
            "seed": self.seed,
            "calls": self.calls,
            "throttled": self.throttled,
        }


_throttles: dict[str, ThrottleRule] = {}
_duplicate_delivery = False


def throttle(action: str, fraction: float = 1.0, *, every_nth: int | None = None, seed: int | None = None) -> None:
    """Answer `fraction` of calls to the Auto Scaling `action` (e.g. "CompleteLifecycleAction")
    with Throttling, or every `every_nth`th call when that is given."""
    rule = ThrottleRule(action=action, fraction=float(fraction), every_nth=every_nth, seed=seed)
    with _guard:
        _throttles[action] = rule


def stop_throttling(action: str | None = None) -> None:
    with _guard:
        if action is None:
            _throttles.clear()
        else:
            _throttles.pop(action, None)


def should_throttle(action: str) -> bool:
    with _guard:
        rule = _throttles.get(action)
        return rule is not None and rule.hit()


def set_duplicate_delivery(enabled: bool) -> None:
    """Send every lifecycle notification to SQS twice, as at-least-once delivery may."""
    global _duplicate_delivery
    _duplicate_delivery = bool(enabled)


def delivery_copies() -> int:
    return 2 if _duplicate_delivery else 1


def snapshot() -> dict:
    with _guard:
        return {
            "throttle": {action: rule.describe() for action, rule in _throttles.items()},
            "duplicate_delivery": _duplicate_delivery,
        }


def clear() -> None:
    stop_throttling()
    set_duplicate_delivery(False)


def install() -> None:
    """Nothing to patch: lifecycle.py consults should_throttle(); present for extensions' contract."""


def reset() -> None:
    clear()
