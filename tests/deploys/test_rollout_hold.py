"""A rollout runs under the fleet hold (issue 21): it takes the hold of the site's Auto Scaling
groups when nobody has, keeps one this holder has (the Jenkinsfile's Hold fleet stage), and is
refused, before anything changes, by another holder's."""

from __future__ import annotations

import json
import sys

import yaml

from helper.cli import main
from tests.scenario import GROUP, SITE

# The deploy command: writes which Auto Scaling processes of the group are suspended while it runs.
SEEN = """\
import json, os, boto3
asg = boto3.client("autoscaling", region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[os.environ["GROUP"]])["AutoScalingGroups"][0]
with open(os.environ["SEEN"], "a") as seen:
    seen.write(json.dumps(sorted(p["ProcessName"] for p in group["SuspendedProcesses"])) + "\\n")
"""


def rollout_world(world, monkeypatch) -> list[str]:
    config = yaml.safe_load(world.config_path.read_text())
    config["sites"][SITE]["rollout"] = {"batch": 1, "min_healthy": 1, "drain_timeout_s": 2, "healthy_timeout_s": 5}
    world.config_path.write_text(yaml.safe_dump(config))
    (world.tmp / "seen.py").write_text(SEEN)
    monkeypatch.setenv("GROUP", GROUP)
    monkeypatch.setenv("SEEN", str(world.tmp / "seen.jsonl"))
    monkeypatch.chdir(world.tmp)
    return ["rollout", "-c", str(world.config_path), "--site", SITE, "--revision", "v2",
            "--holder", "https://ci/job/deploy/3/", "--", sys.executable, str(world.tmp / "seen.py")]


def suspended() -> list[list[str]]:
    import os
    return [json.loads(line) for line in open(os.environ["SEEN"]).read().splitlines()]


def test_a_rollout_holds_the_fleet_while_it_deploys_and_releases_what_it_took(world, monkeypatch):
    argv = rollout_world(world, monkeypatch)
    assert main(argv) == 0
    assert suspended() and all("Terminate" in seen for seen in suspended())  # held during every batch
    assert world.group()["SuspendedProcesses"] == []  # released after
    assert not [t for t in world.group().get("Tags", []) if t["Key"].startswith("aws-deploy-helper:hold")]


def test_a_hold_the_build_has_already_stays_and_another_holders_refuses_the_rollout(world, monkeypatch, capsys):
    argv = rollout_world(world, monkeypatch)
    fleet = ["fleet", "hold", "-c", str(world.config_path), "--site", SITE]
    assert main([*fleet, "--holder", "https://ci/job/deploy/3/"]) == 0  # the Jenkinsfile's Hold fleet stage
    assert main(argv) == 0
    assert "Terminate" in {p["ProcessName"] for p in world.group()["SuspendedProcesses"]}  # still the build's
    assert main(["fleet", "release", "-c", str(world.config_path), "--site", SITE,
                 "--holder", "https://ci/job/deploy/3/"]) == 0

    assert main([*fleet, "--holder", "https://ci/job/deploy/9/"]) == 0  # another build's deploy
    capsys.readouterr()
    before = len(suspended())
    assert main(argv) != 0
    assert "held by https://ci/job/deploy/9/" in capsys.readouterr().err
    assert len(suspended()) == before  # refused before any batch
