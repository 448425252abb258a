"""The mission in one test: a full deploy through the Jenkinsfile, a scale-out gated on a
scale-up build of the same Jenkinsfile, and a failed deploy replaced.

Everything real that can be: the Jenkinsfile runs in the Groovy 2.4 stub runner as the
Jenkins emulator's build command (job parameters read from jenkins/jobs/), the helper
writes the inventory, and the deploy command reaches each host through the generated SSH
config as OpenSSH resolves it (`ssh -G`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import jenkins
import pytest

from helper.sandbox.aws import fleet
from tests.scenario import JENKINS_TOKEN, JENKINS_USER, REGION, Scenario, wait_for

ROOT = Path(__file__).resolve().parent.parent

# DEPLOY_COMMAND: "install" REVISION on every host of the Capistrano file, addressing each
# by the HostName that ssh resolves for its alias. A file fail/once fails the next deploy.
DEPLOY = r'''
import os, pathlib, subprocess, sys, yaml
state = pathlib.Path(sys.argv[1])
once = state / "fail" / "once"
if once.exists():
    once.unlink(); sys.exit("deploy failed: fail/once")
aliases = yaml.safe_load(open(os.environ["CAP_CONFIG"]))["sites"][os.environ["SITE"]]
for alias in aliases:
    resolved = subprocess.run(["ssh", "-G", "-F", os.environ["SSH_CONFIG"], alias],
                              capture_output=True, text=True, check=True).stdout
    host = next(line.split()[1] for line in resolved.splitlines() if line.startswith("hostname "))
    (state / "hosts" / f"{host}.revision").write_text(os.environ["REVISION"])
print(f"deployed {os.environ['REVISION']} to {len(aliases)} host(s)")
'''

needs = [shutil.which(p) for p in ("groovy", "ssh")]
pytestmark = pytest.mark.skipif(
    not all(needs) and os.environ.get("CI") != "true", reason="needs groovy and ssh (Debian: groovy openssh-client)")


@pytest.fixture
def world(aws, tmp_path):
    scenario = Scenario(aws, tmp_path, site={"elb": "web-elb", "user": "deploy"}, quiet_period_s=0.2,
                        jenkins_deadline_s=120)
    script = tmp_path / "deploy_hosts.py"
    script.write_text(DEPLOY)
    env = {
        "DEPLOY_CONFIG": str(scenario.config_path),
        "HELPER_BIN": str(Path(sys.executable).with_name("aws-deploy-helper")),
        "DEPLOY_COMMAND": f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {shlex.quote(str(tmp_path))}",
    }
    command = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command += f' exec {shlex.quote(str(ROOT / "jenkins/stub/run-pipeline"))} --workspace "$WORKSPACE" '
    command += shlex.quote(str(ROOT / "Jenkinsfile"))
    assert scenario.jenkins.add_jobs_from_jjb(ROOT / "jenkins/jobs", commands={"deploy": command}) == ["deploy"]
    yield scenario
    scenario.close()


def private_ip(world, instance_id: str) -> str:
    ec2 = fleet.client("ec2", world.url, REGION)
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["PrivateIpAddress"]


def host_revision(world, instance_id: str) -> str | None:
    path = world.tmp / "hosts" / f"{private_ip(world, instance_id)}.revision"
    return path.read_text() if path.exists() else None


def test_full_deploy_then_gated_scale_out_then_a_failed_launch_replaced(world):
    client = jenkins.Jenkins(world.jenkins.url, JENKINS_USER, JENKINS_TOKEN, timeout=10)
    original = world.instances()

    # 1. A full deploy of v2 through the Jenkinsfile reaches every instance behind the ELB.
    client.build_job("deploy", {"SITE": "web", "REVISION": "v2", "SKIP_TESTS": "true"})
    wait_for(lambda: world.builds() and world.builds()[-1].result, timeout_s=90, what="full deploy")
    full = world.builds()[-1]
    assert full.result == "SUCCESS", full.console
    assert [host_revision(world, i) for i in original] == ["v2", "v2"]
    assert (world.tmp / "revisions" / "web.revision").read_text().strip() == "v2"

    # 2. Scale out by 3: held in Pending:Wait until a scale-up build deployed v2 to them.
    world.start_consumer()
    new = world.scale_to(5)
    assert len(new) == 3 and not set(new) & world.in_elb()
    wait_for(lambda: world.all_in_service(new), timeout_s=120, what="scale-up CONTINUE")
    scale_up = [b for b in world.builds() if b.params.get("LIFECYCLE_ACTIONS")]
    assert len(scale_up) == 1 and sorted(scale_up[0].params["INSTANCE_IDS"].split(",")) == new
    assert "STAGE Test: skipped" in scale_up[0].console
    assert [host_revision(world, i) for i in new] == ["v2"] * 3
    assert set(new) <= world.in_elb() and set(new) <= world.in_target_group()

    # 3. A deploy that fails on a new instance: ABANDON, and the replacement gets v2.
    (world.tmp / "fail" / "once").touch()
    (bad,) = world.scale_to(6)
    wait_for(lambda: bad not in world.instances(), timeout_s=120, what="ABANDON")
    wait_for(lambda: len(world.instances("InService")) == 6, timeout_s=120, what="replacement CONTINUEd")
    (replacement,) = set(world.instances()) - set(original) - set(new)
    assert host_revision(world, replacement) == "v2"
    assert host_revision(world, bad) is None
    results = [b.result for b in world.builds()]
    assert results.count("FAILURE") == 1 and results.count("SUCCESS") == 3
