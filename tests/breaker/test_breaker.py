"""The per-site breaker (issue 11): transitions and hold decisions as tables over pure functions,
hostile tag values, and the tag store against the moto server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.config import Config

from helper.breaker.state import (
    CLOSED,
    MAX_TAG_VALUE,
    BreakerState,
    BreakerStore,
    BreakerStoreError,
    Event,
    Park,
    State,
    close_if_revision_changed,
    decode_tags,
    encode_tags,
    merge,
    on_result,
    park_decision,
    park_decision_for_hook,
    reset,
    seconds_left,
    tag_keys,
    with_parked,
)
from helper.consumer.autoscaling import Waiting
from helper.sandbox.aws import fleet

REGION = "us-east-1"
NOW = datetime(2026, 11, 27, 17, 53, 55, tzinfo=timezone.utc)
STAMP = "2026-11-27T17:53:55Z"
EARLIER = "2026-11-27T10:00:00Z"


def closed(rev="", n=0, since=EARLIER, reason=""):
    return BreakerState(State.CLOSED, rev, n, since, reason)


def opened(rev="v1", n=3, since=EARLIER, reason="3 consecutive scale-up deploys of v1 failed"):
    return BreakerState(State.OPEN, rev, n, since, reason)


# --- on_result: every transition ------------------------------------------------------------

@pytest.mark.parametrize("before, revision, succeeded, threshold, after, event", [
    # Counting towards the threshold, one revision.
    (CLOSED, "v1", False, 3, (State.CLOSED, "v1", 1, STAMP), None),
    (closed("v1", 1), "v1", False, 3, (State.CLOSED, "v1", 2, STAMP), None),
    (closed("v1", 2), "v1", False, 3, (State.OPEN, "v1", 3, STAMP), Event.OPENED),
    (CLOSED, "v1", False, 1, (State.OPEN, "v1", 1, STAMP), Event.OPENED),
    # Another revision starts a new count.
    (closed("v1", 2), "v2", False, 3, (State.CLOSED, "v2", 1, STAMP), None),
    # A success ends the count; with nothing counted nothing changes (no tag write).
    (closed("v1", 2), "v1", True, 3, (State.CLOSED, "v1", 0, STAMP), None),
    (closed("v1", 0), "v1", True, 3, (State.CLOSED, "v1", 0, EARLIER), None),
    (CLOSED, "v1", True, 3, (State.CLOSED, "", 0, ""), None),
    # Open: a late failure of the same revision counts but opens nothing new.
    (opened("v1", 3), "v1", False, 3, (State.OPEN, "v1", 4, EARLIER), None),
    # Open: a build started before it opened succeeded, so the revision deploys.
    (opened("v1", 3), "v1", True, 3, (State.CLOSED, "v1", 0, STAMP), Event.CLOSED),
    # Open for v1, the site moved to v2 and v2 failed once: the v1 breaker is void.
    (opened("v1", 3), "v2", False, 3, (State.CLOSED, "v2", 1, STAMP), Event.CLOSED),
    (opened("v1", 3), "v2", False, 1, (State.OPEN, "v2", 1, STAMP), Event.OPENED),
    # An unrecorded revision ("") is counted like any other.
    (CLOSED, "", False, 1, (State.OPEN, "", 1, STAMP), Event.OPENED),
    # The count saturates inside four digits.
    (opened("v1", 9999), "v1", False, 3, (State.OPEN, "v1", 9999, EARLIER), None),
], ids=["first-failure", "second-failure", "third-opens", "threshold-1", "other-revision-restarts",
        "success-resets", "success-nothing-counted", "success-fresh", "open-late-failure", "open-late-success",
        "open-other-revision", "open-other-revision-threshold-1", "unrecorded-revision", "saturates"])
def test_on_result(before, revision, succeeded, threshold, after, event):
    state, got = on_result(before, revision, succeeded, threshold, now=NOW)
    assert (state.state, state.revision, state.failures, state.since) == after
    assert got is event
    assert "\n" not in state.reason and len(state.reason) <= MAX_TAG_VALUE


def test_opening_says_why_in_one_line():
    state, _ = on_result(closed("v1", 2), "v1", False, 3, detail="FAILURE build #12\nsecond line", now=NOW)
    assert state.reason == "3 consecutive scale-up deploys of v1 failed; last: FAILURE build #12 second line"
    assert state.opened_at == STAMP and closed().opened_at is None


@pytest.mark.parametrize("threshold", [0, -1])
def test_a_threshold_below_one_is_a_bug(threshold):
    with pytest.raises(ValueError):
        on_result(CLOSED, "v1", False, threshold)


@pytest.mark.parametrize("before, recorded, after, event", [
    (opened("v1"), "v2", (State.CLOSED, "v2", 0, STAMP), Event.CLOSED),
    (opened("v1"), "v1", (State.OPEN, "v1", 3, EARLIER), None),  # a full deploy of the same bad revision
    (opened("v1"), None, (State.OPEN, "v1", 3, EARLIER), None),  # nothing recorded: nothing known
    (opened("v1"), "", (State.OPEN, "v1", 3, EARLIER), None),
    (closed("v1", 2), "v2", (State.CLOSED, "v2", 0, STAMP), None),  # the count is void, quietly
    (closed("v1", 0), "v2", (State.CLOSED, "v1", 0, EARLIER), None),  # nothing to change: no write
], ids=["open-new-revision", "open-same-revision", "open-none", "open-empty", "counting-new-revision", "idle"])
def test_close_if_revision_changed(before, recorded, after, event):
    state, got = close_if_revision_changed(before, recorded, now=NOW)
    assert (state.state, state.revision, state.failures, state.since) == after
    assert got is event
    if event:
        assert state.reason == "a full deploy recorded v2 (was v1)"


@pytest.mark.parametrize("before, event", [(opened("v1"), Event.CLOSED), (closed("v1", 2), None), (CLOSED, None)])
def test_reset(before, event):
    state, got = reset(before, now=NOW)
    assert (state.state, state.failures, state.since, state.reason) == (State.CLOSED, 0, STAMP, "reset by an operator")
    assert got is event


# --- park_decision ---------------------------------------------------------------------------

START = NOW
GLOBAL_S, MARGIN_S = 90000, 1800  # HeartbeatTimeout 900 s; give up 30 min early, alert 30 min before that


@pytest.mark.parametrize("elapsed_s, decision", [
    (0, Park.PARK),
    (GLOBAL_S - 2 * MARGIN_S - 1, Park.PARK),
    (GLOBAL_S - 2 * MARGIN_S, Park.ALERT_NEAR_TIMEOUT),
    (GLOBAL_S - MARGIN_S - 1, Park.ALERT_NEAR_TIMEOUT),
    (GLOBAL_S - MARGIN_S, Park.LET_DEFAULT_APPLY),
    (GLOBAL_S + 10, Park.LET_DEFAULT_APPLY),  # the consumer was down past the deadline
])
def test_hold_decision(elapsed_s, decision):
    assert park_decision(START + timedelta(seconds=elapsed_s), START, GLOBAL_S, MARGIN_S) is decision


def test_hold_decision_with_a_margin_as_long_as_the_timeout_never_holds():
    assert park_decision(START, START, 3000, 3000) is Park.LET_DEFAULT_APPLY


@pytest.mark.parametrize("heartbeat_timeout_s, elapsed_s, decision", [
    (900, GLOBAL_S - MARGIN_S - 1, Park.ALERT_NEAR_TIMEOUT),  # 100 x 900 s
    (900, GLOBAL_S - MARGIN_S, Park.LET_DEFAULT_APPLY),
    (7200, 172800 - MARGIN_S - 1, Park.ALERT_NEAR_TIMEOUT),  # capped at 48 h, not 100 x 7200 s
    (7200, 172800 - MARGIN_S, Park.LET_DEFAULT_APPLY),
])
def test_hold_decision_for_a_hook_uses_aws_global_timeout(heartbeat_timeout_s, elapsed_s, decision):
    assert park_decision_for_hook(START + timedelta(seconds=elapsed_s), START, heartbeat_timeout_s,
                                  MARGIN_S) is decision


def test_seconds_left_until_the_default_applies():
    assert seconds_left(START + timedelta(seconds=GLOBAL_S - 2 * MARGIN_S), START, GLOBAL_S, MARGIN_S) == MARGIN_S
    assert seconds_left(START + timedelta(days=9), START, GLOBAL_S, MARGIN_S) == 0


# --- encoding: round trip, limits, hostile values --------------------------------------------

def test_encode_is_compact_and_round_trips():
    state = BreakerState(State.OPEN, "v1.4.2", 3, STAMP, "3 consecutive scale-up deploys of v1.4.2 failed")
    tags = encode_tags("web", state)
    assert tags == {"aws-deploy-helper:breaker:web": f"v1;state=open;rev=v1.4.2;n=3;since={STAMP}",
                    "aws-deploy-helper:breaker-reason:web": state.reason}
    assert decode_tags("web", tags) == state


def test_the_longest_state_fits_one_tag_value_and_the_longest_key_one_key():
    longest = BreakerState(State.CLOSED, "a" * 200, 9999, STAMP, "x" * 1000)
    site = "s" * 63
    tags = encode_tags(site, longest)
    assert all(len(k) <= 128 and len(v) <= 256 for k, v in tags.items())
    assert decode_tags(site, tags) == BreakerState(State.CLOSED, "a" * 200, 9999, STAMP, "x" * 256)


def test_a_group_without_the_tag_is_closed_and_another_sites_tag_is_not_ours():
    assert decode_tags("web", {}) == CLOSED
    other = encode_tags("shop", opened())
    assert decode_tags("web", other) == CLOSED


KEY = "aws-deploy-helper:breaker:web"
HOSTILE = {
    "empty": "",
    "too-long": f"v1;state=open;rev={'a' * 240};n=3;since={STAMP}",
    "unknown-version": f"v2;state=open;rev=v1;n=3;since={STAMP}",
    "no-version": f"state=open;rev=v1;n=3;since={STAMP}",
    "open-garbage": "v1;state=open;garbage",
    "open-only": "v1;state=open",
    "open-bad-count": f"v1;state=open;rev=v1;n=three;since={STAMP}",
    "open-negative": f"v1;state=open;rev=v1;n=-3;since={STAMP}",
    "open-zero": f"v1;state=open;rev=v1;n=0;since={STAMP}",
    "open-no-since": "v1;state=open;rev=v1;n=3;since=",
    "open-bad-since": "v1;state=open;rev=v1;n=3;since=yesterday",
    "open-impossible-date": "v1;state=open;rev=v1;n=3;since=2026-13-45T99:00:00Z",
    "open-local-time": "v1;state=open;rev=v1;n=3;since=2026-11-27T17:53:55+02:00",
    "unknown-state": f"v1;state=half-open;rev=v1;n=3;since={STAMP}",
    "state-case": f"v1;state=OPEN;rev=v1;n=3;since={STAMP}",
    "repeated-field": f"v1;state=closed;state=open;rev=v1;n=3;since={STAMP}",
    "extra-field": f"v1;state=open;rev=v1;n=3;since={STAMP};by=me",
    "shell-revision": f"v1;state=open;rev=$(rm -rf /);n=3;since={STAMP}",
    "parent-revision": f"v1;state=open;rev=../etc;n=3;since={STAMP}",
    "unicode-revision": f"v1;state=open;rev=v1\u202e;n=3;since={STAMP}",
    "unicode-digits": f"v1;state=open;rev=v1;n=\u0663;since={STAMP}",
    "unicode-everything": "\u2603\u0000\ud800\U0001F4A5",
    "newline": f"v1;state=open;rev=v1;n=3;since={STAMP}\n",
    "huge-count": f"v1;state=open;rev=v1;n=99999;since={STAMP}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_an_unreadable_tag_is_closed_with_a_warning_never_open_never_raised(name):
    state = decode_tags("web", {KEY: HOSTILE[name], "aws-deploy-helper:breaker-reason:web": "x"})
    assert state.state is State.CLOSED and state.failures == 0 and state.revision == ""
    assert state.reason.startswith("unreadable breaker tag (") and state.reason.endswith("treated as closed")
    assert HOSTILE[name][-20:] not in state.reason or HOSTILE[name] == ""  # the value is not echoed


def test_a_hostile_reason_is_one_printable_line_of_at_most_256_characters():
    state = decode_tags("web", {KEY: f"v1;state=open;rev=v1;n=3;since={STAMP}",
                                "aws-deploy-helper:breaker-reason:web": "a\nb\x1b[31m" + "z" * 600})
    assert state.is_open and state.reason.startswith("a b [31m") and len(state.reason) == 256


def test_merge_prefers_the_latest_readable_state_and_open_on_a_tie():
    old_open = encode_tags("web", opened(since="2026-11-27T09:00:00Z"))
    new_closed = encode_tags("web", closed("v2", 0, since="2026-11-27T12:00:00Z", reason="reset by an operator"))
    same_time_closed = encode_tags("web", closed("v1", 2, since="2026-11-27T09:00:00Z"))
    assert merge("web", {"a": old_open, "b": new_closed}).reason == "reset by an operator"
    assert merge("web", {"a": old_open, "b": same_time_closed}).is_open
    assert merge("web", {"a": {KEY: "junk"}, "b": old_open}).is_open  # junk on one group hides nothing
    junk = merge("web", {"a": {KEY: "junk"}, "b": {}})
    assert not junk.is_open and junk.reason.startswith("a: unreadable breaker tag")
    assert merge("web", {"a": {}, "b": {}}) == CLOSED


def test_held_actions_come_from_waiting_instances():
    state = with_parked(opened(), [Waiting("web-asg", "i-2", "Pending:Wait"), Waiting("web-asg", "i-1", "Pending:Wait")])
    assert state.held == (("web-asg", "i-1"), ("web-asg", "i-2"))
    assert "held" not in encode_tags("web", state)[KEY]


# --- the store against the moto server -------------------------------------------------------

@pytest.fixture
def asg(aws):
    for name in ("web-a", "web-b", "shop-asg"):
        fleet.auto_scaling_site(aws, REGION, name, 0)
    return fleet.client("autoscaling", aws, REGION)


def group_tags(asg, group):
    tags = asg.describe_tags(Filters=[{"Name": "auto-scaling-group", "Values": [group]}])["Tags"]
    return {t["Key"]: (t["Value"], t["PropagateAtLaunch"]) for t in tags}


def test_store_writes_each_group_reads_one_state_and_clears(asg):
    store = BreakerStore(asg)
    assert store.read("web", ["web-a", "web-b"]) == CLOSED
    state, _ = on_result(closed("v1", 2), "v1", False, 3, now=NOW)
    store.write("web", ["web-a", "web-b"], state)
    for group in ("web-a", "web-b"):
        assert group_tags(asg, group)[tag_keys("web")[0]] == (f"v1;state=open;rev=v1;n=3;since={STAMP}", False)
    assert group_tags(asg, "shop-asg") == {}
    # Another replica (another client, same AWS) sees the same breaker.
    assert BreakerStore(fleet.client("autoscaling", asg.meta.endpoint_url, REGION)).read("web", ["web-a", "web-b"]) \
        == state
    assert store.read("shop", ["shop-asg"]) == CLOSED
    store.clear("web", ["web-a", "web-b"])
    assert group_tags(asg, "web-a") == {} and store.read("web", ["web-a", "web-b"]) == CLOSED


def test_store_reads_a_forged_tag_as_closed_and_a_half_written_site_as_its_latest_state(asg):
    store = BreakerStore(asg)
    asg.create_or_update_tags(Tags=[{"ResourceId": "web-a", "ResourceType": "auto-scaling-group",
                                     "Key": tag_keys("web")[0], "Value": "v1;state=open;\u2603",
                                     "PropagateAtLaunch": False}])
    forged = store.read("web", ["web-a", "web-b"])
    assert not forged.is_open and "web-a: unreadable breaker tag" in forged.reason
    store.write("web", ["web-a"], opened(since=STAMP))  # a write that reached one group only
    assert store.read("web", ["web-a", "web-b"]).is_open
    store.write("web", ["web-b"], closed("v2", since="2026-11-27T18:00:00Z", reason="reset by an operator"))
    assert store.read("web", ["web-a", "web-b"]).reason == "reset by an operator"


def test_store_failures_are_one_helper_error():
    # Nothing listens on port 1: the call fails at once, with botocore's retries turned off.
    client = boto3.client("autoscaling", endpoint_url="http://127.0.0.1:1", region_name=REGION,
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    store = BreakerStore(client)
    for call in (lambda: store.read("web", ["web-a"]), lambda: store.write("web", ["web-a"], opened()),
                 lambda: store.clear("web", ["web-a"])):
        with pytest.raises(BreakerStoreError, match=" breaker of web: Could not connect"):
            call()


@pytest.mark.parametrize("margin_s, heartbeat_timeout_s, at_s, expected", [
    # Issue 19 item 24: margin 1800 s, HeartbeatTimeout 12 s (global 1200 s) gave up the moment a launch was held.
    pytest.param(1800, 12, 1, Park.ALERT_NEAR_TIMEOUT, id="the default margin on a short hook: clamped, held"),
    pytest.param(1800, 12, 119, Park.ALERT_NEAR_TIMEOUT, id="still held just before a tenth of the global"),
    pytest.param(1800, 12, 120, Park.LET_DEFAULT_APPLY, id="given up at a tenth of the global timeout"),
    pytest.param(60, 12, 1079, Park.PARK, id="a small margin is used as written"),
    pytest.param(60, 12, 1140, Park.LET_DEFAULT_APPLY, id="a small margin gives up at global - margin"),
])
def test_a_margin_beyond_nine_tenths_of_the_global_timeout_is_clamped(margin_s, heartbeat_timeout_s, at_s, expected):
    from helper.breaker.state import effective_margin_s

    start = datetime(2026, 11, 27, 17, 0, tzinfo=timezone.utc)
    assert effective_margin_s(1800, 1200) == 1080 and effective_margin_s(60, 1200) == 60
    assert park_decision_for_hook(start + timedelta(seconds=at_s), start, heartbeat_timeout_s, margin_s) is expected
