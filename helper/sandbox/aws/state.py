"""Everything the sandbox's Auto Scaling extension remembers, in one object.

moto dispatches to our patched handlers by method name, with no way to hand them an argument,
so they reach the state through one accessor, `current()`. `create()` makes the object when
the extension is installed (lifecycle.install), with the time scale it is given; nothing here
reads the environment. Throttling answers exactly as AWS does under load (HTTP 400,
query-protocol XML error, Code `Throttling`, Message `Rate exceeded`); a rule is deterministic
when asked: `every_nth=N` throttles calls N, 2N, ...; `fraction` with `seed` draws from its own
seeded RNG.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Callable

from helper.sandbox.aws.actions import ActionBook, SandboxClock, Ticker
from helper.sandbox.aws.notify import DIRECT, SHAPES


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
        return {"fraction": self.fraction, "every_nth": self.every_nth, "seed": self.seed,
                "calls": self.calls, "throttled": self.throttled}


class Faults:
    """Throttled Auto Scaling calls and duplicate SQS deliveries; safe from any request thread."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._throttles: dict[str, ThrottleRule] = {}
        self._duplicate_delivery = False

    def throttle(self, action: str, fraction: float = 1.0, *, every_nth: int | None = None,
                 seed: int | None = None) -> None:
        rule = ThrottleRule(action=action, fraction=float(fraction), every_nth=every_nth, seed=seed)
        with self._guard:
            self._throttles[action] = rule

    def stop_throttling(self, action: str | None = None) -> None:
        with self._guard:
            if action is None:
                self._throttles.clear()
            else:
                self._throttles.pop(action, None)

    def should_throttle(self, action: str) -> bool:
        with self._guard:
            rule = self._throttles.get(action)
            return rule is not None and rule.hit()

    def set_duplicate_delivery(self, enabled: bool) -> None:
        self._duplicate_delivery = bool(enabled)

    def delivery_copies(self) -> int:
        return 2 if self._duplicate_delivery else 1

    def snapshot(self) -> dict:
        with self._guard:
            return {"throttle": {action: rule.describe() for action, rule in self._throttles.items()},
                    "duplicate_delivery": self._duplicate_delivery}

    def clear(self) -> None:
        self.stop_throttling()
        self.set_duplicate_delivery(False)


@dataclass
class SandboxState:
    """The clock, the pending actions, the fault switches, the delivery shape and the ticker.

    `lock` serialises every change the extension makes to moto's backends, taken by request
    threads and by the ticker alike, so an expiry never interleaves with a CompleteLifecycleAction.
    """

    default_time_scale: float
    ticker: Ticker
    clock: SandboxClock = field(default_factory=SandboxClock)
    faults: Faults = field(default_factory=Faults)
    delivery_shape: str = DIRECT
    lock: threading.RLock = field(default_factory=threading.RLock)
    book: ActionBook = field(init=False)

    def __post_init__(self) -> None:
        self.book = ActionBook(self.clock)
        self.clock.set_scale(self.default_time_scale)

    def set_delivery_shape(self, shape: str) -> None:
        if shape not in SHAPES:
            raise ValueError(f"unknown delivery shape {shape!r}; expected one of {SHAPES}")
        self.delivery_shape = shape

    def reset_switches(self) -> None:
        """No faults, the "direct" shape and the install-time clock scale."""
        self.faults.clear()
        self.delivery_shape = DIRECT
        self.clock.set_scale(self.default_time_scale)

    def reset(self) -> None:
        """Forget pending actions and restore the default switches."""
        with self.lock:
            self.book.clear()
            self.reset_switches()


_current: SandboxState | None = None


def create(time_scale: float, on_tick: Callable[[SandboxState], None]) -> SandboxState:
    """The state for a newly installed extension; `on_tick(state)` runs on its ticker thread."""
    global _current
    state = SandboxState(default_time_scale=float(time_scale), ticker=Ticker(lambda: on_tick(state)))
    _current = state
    return state


def current() -> SandboxState:
    """The installed extension's state; RuntimeError before MotoServer.start() installed it."""
    if _current is None:
        raise RuntimeError("the sandbox's Auto Scaling extension is not installed (start a MotoServer first)")
    return _current
