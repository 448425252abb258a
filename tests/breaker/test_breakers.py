"""The consumer's side of the breaker (helper/breaker/sites.py) over a fake tag store: which
build results count, the revision the count is for, what a failed tag read leaves, one alert per
transition (issue 11)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from helper.breaker.sites import BreakerMetrics, SiteBreakers
from helper.breaker.state import CLOSED, BreakerState, BreakerStoreError, State
from helper.config.lifecycle import BreakerConfig, GroupRoute, JenkinsConfig, LifecycleConfig
from helper.deploys import revision

NOW = datetime(2026, 11, 27, 17, 53, 55, tzinfo=timezone.utc)


class FakeStore:
    def __init__(self) -> None:
        self.tags: dict[str, BreakerState] = {}
        self.failing = False
        self.writes = 0

    def read(self, site, groups):
        if self.failing:
            raise BreakerStoreError("read breaker: Throttling")
        return self.tags.get(site, CLOSED)

    def write(self, site, groups, state):
        self.writes += 1
        self.tags[site] = state


class FakeAlerts:
    def __init__(self) -> None:
        self.sent = []

    def send(self, alert) -> bool:
        self.sent.append(alert.kind)
        return True


@pytest.fixture
def breakers(tmp_path):
    lc = LifecycleConfig("https://sqs.us-east-1.amazonaws.com/123456789012/hooks", "us-east-1",
                         JenkinsConfig("http://ci/", "deploy"), {"web-asg": GroupRoute("web-asg", "web", "deploy")},
                         breaker=BreakerConfig(failures=3))
    revision.record(str(tmp_path), "web", "v2")
    registry = CollectorRegistry()
    made = SiteBreakers(lc, FakeStore(), FakeAlerts(), BreakerMetrics(registry, ["web"]),
                        str(tmp_path), wall=lambda: NOW)
    made.tmp, made.registry = tmp_path, registry
    return made


@pytest.mark.parametrize("result, counts", [
    ("FAILURE", True), ("UNSTABLE", True),
    # A Jenkins outage or a person says nothing about the revision.
    ("ABORTED", False), ("NOT_BUILT", False), ("CANCELLED", False), ("UNREACHABLE", False),
])
def test_which_results_count_as_failures(breakers, result, counts):
    breakers.record("web", result, "http://ci/job/deploy/1/", "v2")
    assert breakers.store.tags.get("web", CLOSED).failures == (1 if counts else 0)


def test_three_failures_of_the_recorded_revision_open_it_once_with_one_alert(breakers):
    for n in range(4):
        breakers.record("web", "FAILURE", f"http://ci/job/deploy/{n}/", "v2")
    state = breakers.store.tags["web"]
    assert (state.state, state.revision, state.failures) == (State.OPEN, "v2", 4)
    assert breakers.alerts.sent == ["breaker_opened"]
    assert "last: FAILURE http://ci/job/deploy/3/" in state.reason


def test_a_full_deploy_recording_another_revision_closes_it_on_the_next_read(breakers):
    for _ in range(3):
        breakers.record("web", "FAILURE", None, "v2")
    assert breakers.state("web").is_open
    revision.record(str(breakers.tmp), "web", "v3")
    closed = breakers.state("web", held=2)
    assert not closed.is_open and closed.reason == "a full deploy recorded v3 (was v2)"
    assert breakers.alerts.sent == ["breaker_opened", "breaker_closed"]
    writes = breakers.store.writes
    breakers.state("web")
    assert breakers.store.writes == writes, "an unchanged breaker is not written again"


def test_a_failed_tag_read_keeps_the_last_state_seen(breakers):
    for _ in range(3):
        breakers.record("web", "FAILURE", None, "v2")
    assert breakers.state("web").is_open
    breakers.store.failing = True
    assert breakers.state("web").is_open, "an Auto Scaling outage does not let a bad revision loop"
    assert breakers.registry.get_sample_value("adh_breaker_store_errors_total", {"operation": "read"}) == 1
    assert breakers.registry.get_sample_value("adh_breaker_open", {"site": "web"}) == 1


def test_without_a_recorded_revision_failures_still_count(breakers, tmp_path):
    breakers.revision_dir = None
    for _ in range(3):
        breakers.record("web", "FAILURE", None, "")
    assert breakers.store.tags["web"].is_open and breakers.store.tags["web"].revision == ""


def test_a_failure_counts_against_the_revision_the_build_deployed_not_the_one_recorded_since(breakers):
    """Issue 19 item 12: a full deploy recorded v3 while v2's scale-up builds failed: v3 never failed."""
    for _ in range(2):
        breakers.record("web", "FAILURE", None, "v2")
    revision.record(str(breakers.tmp), "web", "v3")
    state = breakers.record("web", "FAILURE", None, "v2")
    assert (state.revision, state.failures, state.is_open) == ("v2", 3, True)
    assert breakers.record("web", "FAILURE", None, None) is None, "a build whose revision nobody knows counts nothing"
    assert breakers.store.tags["web"].failures == 3
