"""Holding the fleet still during a full deploy (issue 11): the decisions as tables over pure
functions, hostile tag values, then hold/release/release_expired against the moto server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.config import Config

from helper.deploys.fleet_hold import (
    DEFAULT_PROCESSES,
    HOLDER_MAX_CHARS,
    MAX_TAG_VALUE,
    TAG_KEY,
    GroupView,
    HoldError,
    HoldRecord,
    ReleasePlan,
    Unreadable,
    check_processes,
    decode,
    encode,
    hold,
    hold_line,
    holder_text,
    is_expired,
    plan_hold,
    plan_release,
    release,
    release_expired,
    release_line,
)
from helper.sandbox.aws import fleet

REGION = "us-east-1"
NOW = datetime(2026, 11, 27, 17, 53, 55, tzinfo=timezone.utc)
LATER = "2026-11-27T19:53:55Z"  # NOW + 2 h
EARLIER = "2026-11-27T10:00:00Z"
BUILD = "https://ci.example.com/job/deploy/job/web/12/"
OTHER = "alice@bastion"
HELD = ("Terminate", "AZRebalance", "ReplaceUnhealthy", "InstanceRefresh")  # in AWS's order, as recorded
AWS_ORDER = ("Terminate", "AZRebalance", "InstanceRefresh", "ReplaceUnhealthy")


def view(suspended=(), tag=None, name="web-asg"):
    return GroupView(name, frozenset(suspended), tag)


def tag(holder=BUILD, until=LATER, processes=AWS_ORDER):
    return encode(HoldRecord(holder, until, tuple(processes)))


# --- pure: names, encoding ------------------------------------------------------------------

@pytest.mark.parametrize("names, message", [
    (("Launch", "Terminate"), "Launch is never held"),
    (("Terminate", "terminate"), "'terminate' is not an Auto Scaling process"),
    ((), "no process to hold"),  # an empty list would suspend every process
])
def test_check_processes_refuses_launch_unknown_names_and_nothing(names, message):
    with pytest.raises(ValueError, match=message):
        check_processes(names)


def test_check_processes_puts_names_in_aws_order():
    assert check_processes(DEFAULT_PROCESSES) == AWS_ORDER


def test_encode_is_compact_and_round_trips():
    value = tag()
    assert value == f"v1;until={LATER};p=Terminate,AZRebalance,InstanceRefresh,ReplaceUnhealthy;by={BUILD}"
    assert decode(value) == HoldRecord(BUILD, LATER, AWS_ORDER)


def test_the_longest_record_fits_one_tag_value_and_the_holder_is_cut_the_same_way_every_time():
    every = ("Terminate", "AddToLoadBalancer", "AlarmNotification", "AZRebalance", "HealthCheck",
             "InstanceRefresh", "ReplaceUnhealthy", "ScheduledActions")
    value = encode(HoldRecord("h" * 1000, LATER, every))
    assert len(value) == MAX_TAG_VALUE
    assert decode(value).holder == holder_text("h" * 1000)
    assert len(holder_text("h" * 1000)) == HOLDER_MAX_CHARS and holder_text("h" * 1000).startswith("h" * 80)


def test_two_long_holders_that_share_their_first_characters_stay_two_holders():
    """Issue 19 item 17: cut to 101 characters, two builds' URLs were one holder, and each could release the other's."""
    base = "https://ci.example.com/job/" + "folder/job/" * 12
    first, second = holder_text(base + "web/12/"), holder_text(base + "web/13/")
    assert first != second and len(first) <= HOLDER_MAX_CHARS and len(second) <= HOLDER_MAX_CHARS
    assert holder_text(base + "web/12/") == first  # stable: release --holder finds its own hold
    held = view(tag=tag(holder=base + "web/12/"))
    with pytest.raises(HoldError, match="is held by"):
        plan_hold(held, HELD, base + "web/13/", 3600, NOW)
    assert isinstance(plan_release(held, base + "web/13/"), str)  # not released by the other build


def test_a_hold_until_beyond_the_longest_ttl_is_no_hold_of_ours():
    """Issue 19 item 16: a forged far-future `until` blocked every full deploy and never expired."""
    forged = view(suspended=("Terminate",), tag=tag(holder=OTHER, until="2099-01-01T00:00:00Z"))
    assert isinstance(decode(forged.tag, NOW), Unreadable)
    assert isinstance(decode(tag(until=LATER), NOW), HoldRecord)  # two hours ahead: a hold of ours
    plan = plan_hold(forged, HELD, BUILD, 3600, NOW)  # a full deploy goes ahead, no refusal
    assert plan.record.holder == BUILD and plan.already == ("Terminate",)  # the forged processes stay an operator's


@pytest.mark.parametrize("value", [
    "",
    "v2;until=2026-11-27T19:53:55Z;p=Terminate;by=x",
    "v1;until=2026-11-27T19:53:55Z;p=Terminate",  # no holder
    "v1;p=Terminate;until=2026-11-27T19:53:55Z;by=x",  # out of order
    "v1;until=tomorrow;p=Terminate;by=x",
    "v1;until=2026-02-30T19:53:55Z;p=Terminate;by=x",  # not a date
    "v1;until=\u0662026-11-27T19:53:55Z;p=Terminate;by=x",  # another script's digit
    "v1;until=2026-11-27T19:53:55Z;p=Launch,Terminate;by=x",  # we never suspend Launch
    "v1;until=2026-11-27T19:53:55Z;p=Terminate,Bogus;by=x",
    "v1;until=2026-11-27T19:53:55Z;p=Terminate,Terminate;by=x",
    "v1;until=2026-11-27T19:53:55Z;p=Terminate;by=",
    "v1;until=2026-11-27T19:53:55Z;p=Terminate;by=a\nb",
    "v1;until=2026-11-27T19:53:55Z;p=Terminate;by=" + "x" * 300,
], ids=["empty", "version", "no-holder", "order", "time-word", "time-impossible", "time-arabic-digit",
        "launch", "unknown-process", "repeated-process", "empty-holder", "two-line-holder", "too-long"])
def test_a_forged_tag_is_unreadable_never_raised(value):
    assert isinstance(decode(value), Unreadable)


def test_a_holder_may_hold_semicolons_and_nothing_suspended_is_a_hold_too():
    assert decode(f"v1;until={LATER};p=;by=a;b=c") == HoldRecord("a;b=c", LATER, ())


@pytest.mark.parametrize("now, expired", [
    (NOW, False), (datetime(2026, 11, 27, 19, 53, 54, tzinfo=timezone.utc), False),
    (datetime(2026, 11, 27, 19, 53, 55, tzinfo=timezone.utc), True), (NOW + timedelta(days=1), True),
])
def test_is_expired_at_until(now, expired):
    assert is_expired(HoldRecord(BUILD, LATER, ()), now) is expired


# --- pure: what a hold suspends ---------------------------------------------------------------

@pytest.mark.parametrize("group, holder, suspend, already, record_processes, until, extended", [
    # A free group: suspend everything wanted, record it all.
    (view(), BUILD, AWS_ORDER, (), AWS_ORDER, LATER, False),
    # An operator suspended AZRebalance by hand: not ours, not recorded, so never resumed.
    (view({"AZRebalance", "HealthCheck"}), BUILD, ("Terminate", "InstanceRefresh", "ReplaceUnhealthy"),
     ("AZRebalance",), ("Terminate", "InstanceRefresh", "ReplaceUnhealthy"), LATER, False),
    # Everything already suspended by hand: a hold that suspends nothing, still recorded.
    (view(AWS_ORDER), BUILD, (), AWS_ORDER, (), LATER, False),
    # The same holder again: extended, and what it suspended before is still ours.
    (view(AWS_ORDER, tag(until="2026-11-27T18:00:00Z")), BUILD, (), (), AWS_ORDER, LATER, True),
    # ... never shortened.
    (view(AWS_ORDER, tag(until="2026-11-28T00:00:00Z")), BUILD, (), (), AWS_ORDER, "2026-11-28T00:00:00Z", True),
    # ... and a process someone resumed by hand meanwhile is suspended again, ours again.
    (view({"Terminate"}, tag()), BUILD, ("AZRebalance", "InstanceRefresh", "ReplaceUnhealthy"), (), AWS_ORDER,
     LATER, True),
    # Another holder's expired hold is taken over with its processes (else they would look like an operator's).
    (view(AWS_ORDER, tag(holder=OTHER, until=EARLIER)), BUILD, (), (), AWS_ORDER, LATER, False),
    # An unreadable tag is no hold of ours: what is suspended under it counts as an operator's.
    (view({"Terminate"}, "v1;until=junk"), BUILD, ("AZRebalance", "InstanceRefresh", "ReplaceUnhealthy"),
     ("Terminate",), ("AZRebalance", "InstanceRefresh", "ReplaceUnhealthy"), LATER, False),
], ids=["free", "operator-suspended", "all-suspended-by-hand", "same-holder-extends", "never-shortened",
        "hand-resumed-meanwhile", "expired-taken-over", "unreadable-tag"])
def test_plan_hold(group, holder, suspend, already, record_processes, until, extended):
    plan = plan_hold(group, AWS_ORDER, holder, 7200, NOW)
    assert (plan.suspend, plan.already, plan.record.processes, plan.record.until, plan.extended) == \
        (suspend, already, record_processes, until, extended)
    assert plan.record.holder == BUILD


def test_another_holder_is_refused_in_one_line_naming_holder_and_expiry():
    with pytest.raises(HoldError) as caught:
        plan_hold(view(AWS_ORDER, tag(holder=OTHER)), AWS_ORDER, BUILD, 7200, NOW)
    assert str(caught.value).startswith(f"web-asg is held by {OTHER} until {LATER}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("holder, ttl_s, message", [
    ("", 7200, "needs a holder"), ("\n\t", 7200, "needs a holder"),
    (BUILD, 0, "outside"), (BUILD, 25 * 3600, "outside"),
])
def test_a_hold_needs_a_holder_and_a_sane_time(holder, ttl_s, message):
    with pytest.raises(HoldError, match=message):
        plan_hold(view(), AWS_ORDER, holder, ttl_s, NOW)


def test_hold_lines_say_what_was_suspended_and_what_was_not_ours():
    plan = plan_hold(view({"AZRebalance"}), AWS_ORDER, BUILD, 7200, NOW)
    assert hold_line(plan) == (f"web-asg: held by {BUILD} until {LATER}; suspended Terminate,InstanceRefresh,"
                               "ReplaceUnhealthy; already suspended, not ours: AZRebalance")
    taken = plan_hold(view(AWS_ORDER, tag(holder=OTHER, until=EARLIER)), AWS_ORDER, BUILD, 7200, NOW)
    assert f"(took over the expired hold of {OTHER})" in hold_line(taken)


# --- pure: what a release resumes ------------------------------------------------------------

@pytest.mark.parametrize("group, holder, resume, kept, delete", [
    (view(), None, (), (), False),  # no tag: nothing to do
    (view({"AZRebalance"}), BUILD, (), ("AZRebalance",), False),
    # Ours resumed, the operator's AZRebalance kept.
    (view({"Terminate", "AZRebalance"}, tag(processes=("Terminate",))), BUILD, ("Terminate",), ("AZRebalance",),
     True),
    # Recorded but no longer suspended (resumed by hand): nothing to call.
    (view(set(), tag()), BUILD, (), (), True),
    # An operator releases whoever holds.
    (view(AWS_ORDER, tag(holder=OTHER)), None, AWS_ORDER, (), True),
    # An unreadable tag, released by an operator: removed, nothing resumed.
    (view(AWS_ORDER, "v1;until=2026-11-27T19:53:55Z;p=Launch;by=x"), None, (), AWS_ORDER, True),
], ids=["no-tag", "no-tag-with-holder", "ours-only", "already-resumed", "operator-releases-any", "unreadable"])
def test_plan_release(group, holder, resume, kept, delete):
    plan = plan_release(group, holder)
    assert (plan.resume, plan.kept, plan.delete_tag) == (resume, kept, delete)


@pytest.mark.parametrize("group, line", [
    (view(AWS_ORDER, tag(holder=OTHER)), f"web-asg: held by {OTHER} until {LATER}; not released"),
    (view(AWS_ORDER, "junk"), "web-asg: unreadable hold tag (unknown format version or missing field); left alone"),
], ids=["another-holder", "unreadable"])
def test_a_build_releases_only_its_own_hold(group, line):
    assert plan_release(group, BUILD) == line


def test_release_lines():
    plan = plan_release(view({"Terminate", "AZRebalance"}, tag(processes=("Terminate",))), BUILD)
    assert release_line(plan) == "web-asg: released; resumed Terminate; still suspended, not ours: AZRebalance"
    assert release_line(plan_release(view())) == "web-asg: not held"


# --- against the moto server -----------------------------------------------------------------

@pytest.fixture
def asg(aws):
    for name in ("web-a", "web-b", "shop-asg"):
        fleet.auto_scaling_site(aws, REGION, name, 2)
    return fleet.client("autoscaling", aws, REGION)


def suspended(asg, group):
    found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    return {p["ProcessName"] for p in found["SuspendedProcesses"]}


def hold_tag(asg, group):
    tags = asg.describe_tags(Filters=[{"Name": "auto-scaling-group", "Values": [group]},
                                      {"Name": "key", "Values": [TAG_KEY]}])["Tags"]
    return {t["Key"]: (t["Value"], t["PropagateAtLaunch"]) for t in tags}.get(TAG_KEY)


def test_hold_suspends_and_tags_every_group_of_the_site_and_no_other(asg):
    plans = hold(asg, "web", ["web-a", "web-b"], DEFAULT_PROCESSES, BUILD, 7200, NOW)
    assert [p.group for p in plans] == ["web-a", "web-b"]
    for group in ("web-a", "web-b"):
        assert suspended(asg, group) == set(AWS_ORDER)
        assert hold_tag(asg, group) == (tag(), False)
        assert "Launch" not in suspended(asg, group)
    assert suspended(asg, "shop-asg") == set() and hold_tag(asg, "shop-asg") is None


def test_release_resumes_only_ours_and_an_operators_azrebalance_stays(asg):
    asg.suspend_processes(AutoScalingGroupName="web-a", ScalingProcesses=["AZRebalance"])
    [plan] = hold(asg, "web", ["web-a"], DEFAULT_PROCESSES, BUILD, 7200, NOW)
    assert plan.already == ("AZRebalance",)
    [released] = release(asg, "web", ["web-a"], holder=BUILD)
    assert released.resume == ("Terminate", "InstanceRefresh", "ReplaceUnhealthy")
    assert suspended(asg, "web-a") == {"AZRebalance"} and hold_tag(asg, "web-a") is None
    # Idempotent: a second release (post { always } after a manual one) has nothing to do.
    assert release_line(release(asg, "web", ["web-a"], holder=BUILD)[0]) == "web-a: not held"
    assert suspended(asg, "web-a") == {"AZRebalance"}


def test_a_second_holder_is_refused_before_any_group_changes_and_cannot_release_the_first(asg):
    hold(asg, "web", ["web-b"], DEFAULT_PROCESSES, OTHER, 7200, NOW)
    with pytest.raises(HoldError, match=f"web-b is held by {OTHER} until {LATER}"):
        hold(asg, "web", ["web-a", "web-b"], DEFAULT_PROCESSES, BUILD, 7200, NOW)
    assert suspended(asg, "web-a") == set() and hold_tag(asg, "web-a") is None  # all or nothing
    # The refused build's post { always } releases with its own holder: the other hold stays.
    assert release(asg, "web", ["web-a", "web-b"], holder=BUILD)[1] == \
        f"web-b: held by {OTHER} until {LATER}; not released"
    assert suspended(asg, "web-b") == set(AWS_ORDER)
    # The same holder extends.
    [plan] = hold(asg, "web", ["web-b"], DEFAULT_PROCESSES, OTHER, 7200, NOW + timedelta(hours=1))
    assert plan.extended and plan.record.until == "2026-11-27T20:53:55Z" and plan.record.processes == AWS_ORDER


def test_a_killed_builds_hold_expires_and_release_expired_frees_only_that_group(asg):
    hold(asg, "web", ["web-a"], DEFAULT_PROCESSES, BUILD, 7200, NOW)
    hold(asg, "shop", ["shop-asg"], DEFAULT_PROCESSES, OTHER, 4 * 3600, NOW)
    assert release_expired(asg, ["web-a", "web-b", "shop-asg"], NOW + timedelta(hours=1)) == []
    released = release_expired(asg, ["web-a", "web-b", "shop-asg"], NOW + timedelta(hours=2))
    assert [(p.group, p.resume) for p in released] == [("web-a", AWS_ORDER)]
    assert suspended(asg, "web-a") == set() and hold_tag(asg, "web-a") is None
    assert suspended(asg, "shop-asg") == set(AWS_ORDER)
    # Once expired, another holder may take over instead of being refused.
    [plan] = hold(asg, "shop", ["shop-asg"], DEFAULT_PROCESSES, BUILD, 7200, NOW + timedelta(hours=5))
    assert plan.took_over == OTHER and plan.record.processes == AWS_ORDER


def test_a_forged_tag_resumes_nothing_and_is_left_for_a_person(asg, caplog):
    asg.suspend_processes(AutoScalingGroupName="web-a", ScalingProcesses=["Launch", "Terminate"])
    forged = f"v1;until={EARLIER};p=Launch,Terminate;by=mallory"
    asg.create_or_update_tags(Tags=[{"ResourceId": "web-a", "ResourceType": "auto-scaling-group", "Key": TAG_KEY,
                                     "Value": forged, "PropagateAtLaunch": False}])
    assert release_expired(asg, ["web-a"], NOW) == []
    assert release(asg, "web", ["web-a"], holder=BUILD) == \
        ["web-a: unreadable hold tag (a process we never suspend, or one named twice); left alone"]
    assert suspended(asg, "web-a") == {"Launch", "Terminate"} and hold_tag(asg, "web-a")[0] == forged
    assert "event=hold_tag_unreadable group=web-a" in caplog.text and "mallory" not in caplog.text
    # A hold overwrites it: the Terminate suspended under it counts as an operator's.
    [plan] = hold(asg, "web", ["web-a"], DEFAULT_PROCESSES, BUILD, 7200, NOW)
    assert plan.already == ("Terminate",)
    release(asg, "web", ["web-a"], holder=BUILD)
    assert suspended(asg, "web-a") == {"Launch", "Terminate"}


def test_an_operator_release_removes_an_unreadable_tag_and_resumes_nothing(asg):
    asg.suspend_processes(AutoScalingGroupName="web-a", ScalingProcesses=["Terminate"])
    asg.create_or_update_tags(Tags=[{"ResourceId": "web-a", "ResourceType": "auto-scaling-group", "Key": TAG_KEY,
                                     "Value": "held by bob", "PropagateAtLaunch": False}])
    [plan] = release(asg, "web", ["web-a"])
    assert release_line(plan) == ("web-a: released (unreadable hold tag removed); nothing to resume; "
                                  "still suspended, not ours: Terminate")
    assert suspended(asg, "web-a") == {"Terminate"} and hold_tag(asg, "web-a") is None


def test_a_missing_group_fails_the_hold_and_is_nothing_to_release(asg):
    with pytest.raises(HoldError, match="hold web: no Auto Scaling group named web-gone"):
        hold(asg, "web", ["web-a", "web-gone"], DEFAULT_PROCESSES, BUILD, 7200, NOW)
    assert hold_tag(asg, "web-a") is None
    assert release(asg, "web", ["web-gone"]) == [ReleasePlan("web-gone", (), (), None, False)]


def test_launch_in_the_config_is_refused_before_any_call(asg):
    with pytest.raises(HoldError, match="hold web: Launch is never held"):
        hold(asg, "web", ["web-a"], ("Terminate", "Launch"), BUILD, 7200, NOW)
    assert suspended(asg, "web-a") == set()


def test_aws_failures_are_one_helper_error():
    # Nothing listens on port 1: the call fails at once, with botocore's retries turned off.
    client = boto3.client("autoscaling", endpoint_url="http://127.0.0.1:1", region_name=REGION,
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    for call in (lambda: hold(client, "web", ["web-a"], DEFAULT_PROCESSES, BUILD, 7200, NOW),
                 lambda: release(client, "web", ["web-a"]), lambda: release_expired(client, ["web-a"], NOW)):
        with pytest.raises(HoldError, match="describe web-a: Could not connect"):
            call()


# --- the sandbox honours a suspended Terminate (helper/sandbox/aws/scaling.py) -------------------

def in_service(asg, group):
    found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    return sorted(i["InstanceId"] for i in found["Instances"])


def test_a_scale_in_request_leaves_every_host_in_place_until_release(asg):
    before = in_service(asg, "web-a")
    hold(asg, "web", ["web-a"], DEFAULT_PROCESSES, BUILD, 7200, NOW)
    asg.set_desired_capacity(AutoScalingGroupName="web-a", DesiredCapacity=0)
    assert in_service(asg, "web-a") == before
    release(asg, "web", ["web-a"], holder=BUILD)
    assert in_service(asg, "web-a") == []


def test_scale_out_stays_allowed_during_a_hold(asg):
    before = in_service(asg, "web-a")
    hold(asg, "web", ["web-a"], DEFAULT_PROCESSES, BUILD, 7200, NOW)
    asg.set_desired_capacity(AutoScalingGroupName="web-a", DesiredCapacity=3)
    after = in_service(asg, "web-a")
    assert len(after) == 3 and set(before) <= set(after)
    # Scaling back in while held keeps all three; the release lets the group converge to 2.
    asg.set_desired_capacity(AutoScalingGroupName="web-a", DesiredCapacity=2)
    assert in_service(asg, "web-a") == after
    release(asg, "web", ["web-a"], holder=BUILD)
    assert len(in_service(asg, "web-a")) == 2
