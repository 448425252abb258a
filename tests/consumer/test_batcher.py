"""helper.consumer.batcher: a batch closes when its window has passed or when it is full, one per key."""

from __future__ import annotations

import pytest

from helper.consumer.action import LAUNCHING, TERMINATING
from helper.consumer.batcher import Batcher


def test_batch_closes_when_its_window_has_passed():
    batcher = Batcher(window_s=3.0, max_size=20)
    batcher.add("web", "a", now=10.0)
    batcher.add("web", "b", now=12.0)
    assert batcher.due(12.99) == []
    assert batcher.due(13.0) == [("web", ["a", "b"])]
    assert batcher.due(100.0) == [] and len(batcher) == 0


def test_full_batch_is_due_at_once_and_the_next_one_opens_a_new_window():
    batcher = Batcher(window_s=3.0, max_size=2)
    batcher.add("web", "a", now=0.0)
    batcher.add("web", "b", now=0.5)
    batcher.add("web", "c", now=1.0)
    assert batcher.seconds_to_next(1.0) == 0.0
    assert batcher.due(1.0) == [("web", ["a", "b"])]
    assert batcher.seconds_to_next(1.0) == pytest.approx(3.0)  # "c" opened its own window at 1.0
    assert batcher.due(4.0) == [("web", ["c"])]


@pytest.mark.parametrize("adds, now, expected", [
    pytest.param([], 0.0, None, id="nothing open"),
    pytest.param([("web", 0.0)], 1.0, 2.0, id="one open batch"),
    pytest.param([("web", 0.0), ("api", 2.0)], 2.5, 0.5, id="earliest of several"),
    pytest.param([("web", 0.0)], 9.0, 0.0, id="overdue is zero, never negative"),
])
def test_seconds_to_next(adds, now, expected):
    batcher = Batcher(window_s=3.0, max_size=20)
    for key, at in adds:
        batcher.add(key, key, now=at)
    assert batcher.seconds_to_next(now) == expected


def test_separate_keys_batch_separately_each_on_its_own_window():
    batcher = Batcher(window_s=3.0, max_size=20)
    batcher.add(("web", LAUNCHING), "w1", now=0.0)
    batcher.add(("api", LAUNCHING), "a1", now=2.0)
    batcher.add(("web", TERMINATING), "t1", now=2.0)
    batcher.add(("web", LAUNCHING), "w2", now=2.5)
    assert batcher.due(3.0) == [(("web", LAUNCHING), ["w1", "w2"])]
    assert sorted(batcher.due(5.0)) == [(("api", LAUNCHING), ["a1"]), (("web", TERMINATING), ["t1"])]


def test_drain_hands_over_full_and_open_batches_and_empties_the_batcher():
    batcher = Batcher(window_s=3.0, max_size=2)
    for item in "abc":
        batcher.add("web", item, now=0.0)
    batcher.add("api", "x", now=0.0)
    assert len(batcher) == 4
    assert sorted(batcher.drain()) == [("api", ["x"]), ("web", ["a", "b"]), ("web", ["c"])]
    assert len(batcher) == 0 and batcher.drain() == [] and batcher.seconds_to_next(0.0) is None
