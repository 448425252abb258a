"""helper.consumer.backoff: full-jitter back-off, capped however many attempts have failed."""

from __future__ import annotations

import random

import pytest

from helper.consumer.backoff import BACKOFF_BASE_S, BACKOFF_MAX_S, backoff_s


@pytest.mark.parametrize("attempt", [0, 1, 2, 5, 6, 10, 50, 1023])
def test_backoff_stays_within_full_jitter_bounds(attempt):
    random.seed(attempt)
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** attempt)
    samples = [backoff_s(attempt) for _ in range(500)]
    assert all(0 <= s <= ceiling for s in samples)
    assert max(samples) > ceiling / 2  # jittered over the range, not stuck at the bottom


# The receive loop's error count grows without bound: an SQS outage of ~1,024 failed
# receives (about 1.5 h at the 10 s cap) once killed the consumer.
def test_backoff_after_very_many_attempts_stays_capped():
    assert 0 <= backoff_s(1024) <= BACKOFF_MAX_S
