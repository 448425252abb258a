"""How long to wait before retrying a call that failed: the receive loop, heartbeats, completion."""

from __future__ import annotations

import random

# The first retry waits up to 0.2 s: a throttled call usually succeeds a moment later.
BACKOFF_BASE_S = 0.2
# Never more than 10 s: a heartbeat or a receive must not fall silent for long after an outage.
BACKOFF_MAX_S = 10.0
# 2.0 ** 1024 overflows a float, and a long outage counts that many attempts; 2 ** 32 is far past the cap.
MAX_EXPONENT = 32


def backoff_s(attempt: int) -> float:
    """Full-jitter exponential back-off (AWS architecture blog), capped."""
    return random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** min(attempt, MAX_EXPONENT)))
