"""bench/lifecycle_replicas.py's counting, as a table: what a duplicate build and a lost action are."""

from __future__ import annotations

import pytest

from bench.lifecycle_replicas import duplicate_builds, lost_actions


@pytest.mark.parametrize("instances_per_build, expected", [
    ([{"i-1", "i-2"}, {"i-3"}], 0),
    ([{"i-1", "i-2"}, {"i-2"}], 1),
    ([{"i-1"}, {"i-1"}, {"i-1"}], 2),
    ([], 0),
])
def test_a_duplicate_build_is_every_build_beyond_the_first_for_an_instance(instances_per_build, expected):
    assert duplicate_builds([{"instances": i} for i in instances_per_build]) == expected


def test_a_lost_action_is_a_launch_never_completed_with_continue():
    records = [{"instance": "i-1", "result": "CONTINUE"}, {"instance": "i-2", "result": "ABANDON"}]
    assert lost_actions({"i-1", "i-2", "i-3"}, records) == 2
    assert lost_actions({"i-1"}, records) == 0
