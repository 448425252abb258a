"""Waiting in tests: poll a condition until a deadline, never sleep a fixed time."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

# Long enough for a loaded CI machine; a condition that is met returns at once.
DEFAULT_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.02


def wait_for(predicate: Callable[[], Any], what: str = "condition", timeout_s: float = DEFAULT_TIMEOUT_S,
             interval_s: float = POLL_INTERVAL_S) -> Any:
    """Return predicate()'s first truthy value; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        tick.wait(interval_s)
