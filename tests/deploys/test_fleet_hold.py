"""Issue 11, holding the fleet still during a full deploy, end to end: the `lifecycle.hold`
config, `fleet hold` / `fleet release` against the sandbox, and the consumer releasing a
killed build's expired hold. The decisions themselves: tests/deploys/test_fleet_hold_core.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from helper.cli import main
from helper.config.document import parse
from helper.config.yamlfile import load_text
from helper.deploys.fleet_hold import TAG_KEY, hold
from helper.errors import ConfigError
from helper.sandbox.aws import fleet
from tests.scenario import GROUP, SITE, Scenario, wait_for
from tests.units import MINIMAL_LIFECYCLE_YAML

REGION = "us-east-1"
BUILD = "https://ci.example.com/job/deploy/12/"
HELD = {"Terminate", "AZRebalance", "InstanceRefresh", "ReplaceUnhealthy"}
LIFECYCLE = MINIMAL_LIFECYCLE_YAML


# --- lifecycle.hold -----------------------------------------------------------------------------

def test_hold_config_defaults_to_the_four_processes_and_two_hours():
    lc = parse(load_text(LIFECYCLE, "deploy.yml")).lifecycle
    assert (set(lc.hold.processes), lc.hold.ttl_s) == (HELD, 7200)


def test_hold_config_is_read_in_aws_order():
    lc = parse(load_text(LIFECYCLE + "  hold: {processes: [HealthCheck, Terminate], ttl_s: 600}\n",
                         "deploy.yml")).lifecycle
    assert (lc.hold.processes, lc.hold.ttl_s) == (("Terminate", "HealthCheck"), 600)


@pytest.mark.parametrize("extra, message", [
    ("  hold: {processes: [Launch]}\n", "deploy.yml:7: lifecycle.hold.processes: Launch is never held"),
    ("  hold: {processes: [Terminat]}\n", "deploy.yml:7: lifecycle.hold.processes: 'Terminat' is not an Auto"),
    ("  hold: {processes: []}\n", "deploy.yml:7: lifecycle.hold.processes: no process to hold"),
    ("  hold: {processes: Terminate}\n", "deploy.yml:7: lifecycle.hold.processes: must be a list"),
    ("  hold: {ttl_s: 0}\n", "deploy.yml:7: lifecycle.hold.ttl_s: must be a number from 1 to 86400"),
    ("  hold: {ttl_s: 90000}\n", "deploy.yml:7: lifecycle.hold.ttl_s: must be a number from 1 to 86400"),
    ("  hold: {until: 5}\n", "deploy.yml:7: lifecycle.hold.until: unknown key"),
])
def test_bad_hold_config_names_file_line_and_key(extra, message):
    with pytest.raises(ConfigError) as caught:
        parse(load_text(LIFECYCLE + extra, "deploy.yml"))
    assert str(caught.value).startswith(message), str(caught.value)


# --- fleet hold / fleet release against the sandbox ----------------------------------------------

def write_config(tmp_path, sites: dict) -> str:
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump({"sites": sites}))
    return str(path)


def suspended(asg, group: str) -> set[str]:
    found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    return {p["ProcessName"] for p in found["SuspendedProcesses"]}


def members(asg, group: str) -> list[str]:
    found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    return sorted(i["InstanceId"] for i in found["Instances"])


@pytest.fixture
def web(aws, tmp_path):
    fleet.auto_scaling_site(aws, REGION, "web-asg", 3)
    return fleet.client("autoscaling", aws, REGION), write_config(tmp_path, {"web": {"asg": "web-asg"}})


def test_fleet_hold_keeps_every_host_through_a_scale_in_until_fleet_release(web, capsys):
    asg, config = web
    before = members(asg, "web-asg")
    assert main(["fleet", "hold", "-c", config, "--site", "web", "--holder", BUILD]) == 0
    assert capsys.readouterr().out.startswith(f"web-asg: held by {BUILD} until ")
    asg.set_desired_capacity(AutoScalingGroupName="web-asg", DesiredCapacity=1)
    assert members(asg, "web-asg") == before
    assert main(["fleet", "release", "-c", config, "--site", "web", "--holder", BUILD]) == 0
    assert capsys.readouterr().out == ("web-asg: released; resumed Terminate,AZRebalance,InstanceRefresh,"
                                       "ReplaceUnhealthy\n")
    assert len(members(asg, "web-asg")) == 1 and suspended(asg, "web-asg") == set()


def test_a_process_an_operator_suspended_stays_suspended_after_release(web, capsys):
    asg, config = web
    asg.suspend_processes(AutoScalingGroupName="web-asg", ScalingProcesses=["AZRebalance", "ScheduledActions"])
    assert main(["fleet", "hold", "-c", config, "--site", "web", "--holder", BUILD]) == 0
    assert "already suspended, not ours: AZRebalance" in capsys.readouterr().out
    assert main(["fleet", "release", "-c", config, "--site", "web", "--holder", BUILD]) == 0
    assert suspended(asg, "web-asg") == {"AZRebalance", "ScheduledActions"}


def test_the_holder_defaults_to_the_build_url_and_another_holder_is_refused_in_one_line(web, capsys,
                                                                                          monkeypatch):
    asg, config = web
    monkeypatch.setenv("BUILD_URL", BUILD)
    assert main(["fleet", "hold", "-c", config, "--site", "web"]) == 0
    monkeypatch.setenv("BUILD_URL", "https://ci.example.com/job/deploy/13/")
    capsys.readouterr()
    assert main(["fleet", "hold", "-c", config, "--site", "web"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"aws-deploy-helper: web-asg is held by {BUILD} until ") and err.count("\n") == 1
    # Build 13's post { always } leaves build 12's hold alone; an operator (no holder) releases it.
    assert main(["fleet", "release", "-c", config, "--site", "web"]) == 0
    assert suspended(asg, "web-asg") == HELD
    monkeypatch.delenv("BUILD_URL")
    assert main(["fleet", "release", "-c", config, "--site", "web"]) == 0
    assert suspended(asg, "web-asg") == set()


def test_a_site_without_a_group_has_nothing_to_hold(aws, tmp_path, capsys):
    dns = fleet.classic_elb_site(aws, REGION, "shop-elb", 1)
    config = write_config(tmp_path, {"shop": {"elb": dns}})
    assert main(["fleet", "hold", "-c", config, "--site", "shop"]) == 0
    assert main(["fleet", "release", "-c", config, "--site", "shop"]) == 0
    assert capsys.readouterr().out == ("shop: no Auto Scaling group, nothing to hold\n"
                                       "shop: no Auto Scaling group, nothing to release\n")


# --- with the consumer: new instances are still gated; a killed build's hold expires ------------

def test_scale_out_during_a_hold_is_gated_and_deployed_and_scale_in_waits_for_release(world, capsys):
    world.start_consumer()
    assert main(["fleet", "hold", "-c", str(world.config_path), "--site", SITE, "--holder", BUILD]) == 0
    new = world.scale_to(3)
    assert world.instances("Pending:Wait") == new  # Launch is never held: gated as before
    wait_for(lambda: world.all_in_service(new), what="the new instance deployed and CONTINUEd")
    everyone = world.instances()
    world.scale_to(1)
    assert world.instances("InService") == everyone
    assert main(["fleet", "release", "-c", str(world.config_path), "--site", SITE, "--holder", BUILD]) == 0
    assert len(world.instances()) == 1


def test_a_killed_builds_hold_expires_and_the_consumers_reconcile_releases_it(world):
    world.asg.suspend_processes(AutoScalingGroupName=GROUP, ScalingProcesses=["AZRebalance"])  # an operator's
    # A build that held three hours ago with a two-hour hold, and died without its post.
    hold(world.asg, SITE, [GROUP], holder=BUILD, ttl_s=7200,
         now=datetime.now(timezone.utc) - timedelta(hours=3))
    consumer = world.consumer()
    consumer.reconcile()
    assert suspended(world.asg, GROUP) == {"AZRebalance"}
    tags = world.asg.describe_tags(Filters=[{"Name": "key", "Values": [TAG_KEY]}])["Tags"]
    assert tags == []
    assert consumer.metrics.registry.get_sample_value("adh_fleet_hold_expired_releases_total") == 1


def test_a_live_hold_is_left_alone_by_reconcile(world):
    hold(world.asg, SITE, [GROUP], holder=BUILD, ttl_s=7200)
    world.consumer().reconcile()
    assert suspended(world.asg, GROUP) == HELD


def test_an_expired_hold_on_a_sites_own_asg_group_is_released_too(aws, tmp_path):
    """Issue 19 item 6: the site's asg: group is in no lifecycle route; a killed build's hold on it expires all the same."""
    own = fleet.auto_scaling_site(aws, REGION, "web-own-asg", 0)
    scenario = Scenario(aws, tmp_path, site={"asg": own})
    try:
        hold(scenario.asg, SITE, [own], holder=BUILD, ttl_s=7200, now=datetime.now(timezone.utc) - timedelta(hours=3))
        assert suspended(scenario.asg, own) == HELD
        consumer = scenario.consumer()
        assert own in consumer.hold_groups and own not in consumer.config.groups
        consumer.reconcile()
        assert suspended(scenario.asg, own) == set()
    finally:
        scenario.close()


def test_two_holders_at_once_never_both_hold(aws, tmp_path):
    """Issue 19 item 7: both holds succeeded in 20 of 20 trials; now exactly one wins and the other is refused."""
    import threading

    from helper.errors import HelperError

    own = fleet.auto_scaling_site(aws, REGION, "race-asg", 0)
    asg = fleet.client("autoscaling", aws, REGION)
    winners_per_trial = []
    for trial in range(8):
        barrier, won = threading.Barrier(2), []

        def take(holder):
            client = fleet.client("autoscaling", aws, REGION)
            barrier.wait()
            try:
                hold(client, SITE, [own], holder=holder, ttl_s=600)
                won.append(holder)
            except HelperError as exc:
                assert "is held by" in str(exc) or "is taking a hold" in str(exc), str(exc)

        threads = [threading.Thread(target=take, args=(f"https://ci/job/{name}/{trial}/",)) for name in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        winners_per_trial.append(len(won))
        tags = asg.describe_tags(Filters=[{"Name": "auto-scaling-group", "Values": [own]}])["Tags"]
        assert not [t for t in tags if t["Key"] != TAG_KEY], "claims are removed, won or lost"
        if won:
            assert [t["Value"] for t in tags if t["Key"] == TAG_KEY][0].endswith("by=" + won[0])
        asg.resume_processes(AutoScalingGroupName=own)
        if tags:
            asg.delete_tags(Tags=[{"ResourceId": own, "ResourceType": "auto-scaling-group", "Key": TAG_KEY}])
    # Exactly one each time: the other is refused, by the hold (naming its holder) or by the crossing claim.
    assert winners_per_trial == [1] * len(winners_per_trial), winners_per_trial


def test_a_stale_or_forged_claim_does_not_block_a_hold(aws):
    """A holder killed between its claim and its removal must not refuse every later hold."""
    from helper.deploys.hold_claim import claim_key, claim_value

    own = fleet.auto_scaling_site(aws, REGION, "stale-asg", 0)
    asg = fleet.client("autoscaling", aws, REGION)
    old = claim_value("https://ci/job/dead/1/", datetime.now(timezone.utc) - timedelta(hours=1))
    future = claim_value("mallory", datetime.now(timezone.utc) + timedelta(days=30))
    asg.create_or_update_tags(Tags=[
        {"ResourceId": own, "ResourceType": "auto-scaling-group", "Key": claim_key(k), "Value": v,
         "PropagateAtLaunch": False} for k, v in (("dead", old), ("mallory", future), ("junk", "not a claim"))])
    assert hold(asg, SITE, [own], holder=BUILD, ttl_s=600)[0].record.holder == BUILD
