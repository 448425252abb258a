"""A rollout SIGKILLed mid-drain and mid-deploy (issue 21): what it took out is on record, `rollout
status` says so, and `rollout abort` puts every host back where it was, once, touching no other.

The rollout runs as its own process group, as a Jenkins agent runs a build's processes, and the
whole group is killed (the deploy command with it). Mid-admit, under real traffic, is in
tests/deploys/test_rollout_traffic.py; the expiry path (no command at all) in
tests/consumer/test_rollout_expiry.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import yaml

from helper.cli import main
from helper.deploys.rollout_record import KEY
from helper.sandbox.aws import fleet
from tests.deploys.test_rollout import EVERYWHERE, REGION, registrations, rollout
from tests.polling import wait_for

# The deploy command for the mid-deploy kill: says it started, then waits for a signal (the kill).
HANGING_DEPLOY = "import os, pathlib, signal\npathlib.Path(os.environ['MARK']).touch()\nsignal.pause()\n"


def start_rollout(tmp_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "helper", "rollout", "-c", "deploy.yml", "--site", "web",
                             "--revision", "v2", "--", sys.executable, "deploy.py"], cwd=tmp_path,
                            env={**os.environ, "MARK": str(tmp_path / "deploying"), "PYTHONPATH": os.getcwd()},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def recorded(aws) -> list[str]:
    ec2 = fleet.client("ec2", aws, REGION)
    tags = ec2.describe_tags(Filters=[{"Name": "key", "Values": [KEY]}])["Tags"]
    return sorted(t["ResourceId"] for t in tags)


def kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.mark.parametrize("phase", ["drain", "deploy"])
def test_a_rollout_killed_mid_phase_is_on_record_and_abort_puts_every_host_back(site, aws, capsys, phase):
    tmp_path, ids, tg_arn, admin_arn = site
    config = yaml.safe_load((tmp_path / "deploy.yml").read_text())
    if phase == "drain":  # a classic ELB's draining is waited out: 30 s, far longer than the test waits
        fleet.client("elb", aws, REGION).modify_load_balancer_attributes(
            LoadBalancerName="web-classic", LoadBalancerAttributes={"ConnectionDraining": {"Enabled": True,
                                                                                           "Timeout": 30}})
        config["sites"]["web"]["rollout"]["drain_timeout_s"] = 30
    else:
        (tmp_path / "deploy.py").write_text(HANGING_DEPLOY)
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(config))

    process = start_rollout(tmp_path)
    try:
        if phase == "drain":
            out = wait_for(lambda: len(recorded(aws)) == 2 and recorded(aws), timeout_s=60, what="batch 1 recorded")
            wait_for(lambda: all(i not in registrations(aws, tg_arn, admin_arn) for i in out), timeout_s=30,
                     what="batch 1 deregistered (draining)")
        else:
            wait_for(lambda: (tmp_path / "deploying").exists(), timeout_s=60, what="batch 1's deploy to start")
            out = recorded(aws)
    finally:
        kill(process)
    assert len(out) == 2 and not (phase == "drain" and (tmp_path / "deploying").exists())
    assert all(i not in registrations(aws, tg_arn, admin_arn) for i in out)

    capsys.readouterr()
    assert rollout("status") == 1
    said = capsys.readouterr().out
    assert all(f"{i} out" in said for i in out), said
    assert rollout("abort") == 0
    assert registrations(aws, tg_arn, admin_arn) == {i: EVERYWHERE for i in ids}  # back, each once, nowhere new
    assert recorded(aws) == [] and rollout("status") == 0
    assert main(["rollout", "abort", "-c", "deploy.yml", "--site", "web"]) == 0  # again: nothing to do
    assert registrations(aws, tg_arn, admin_arn) == {i: EVERYWHERE for i in ids}
