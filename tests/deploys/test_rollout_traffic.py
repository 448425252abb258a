"""Rolling deploys under real traffic (issue 21): HAProxy in front of real SSH hosts that run the
sandbox's web app, moto's target group driving it (helper/sandbox/balancer/balanced_site.py). The deploy command connects
to each host of its batch with the batch's SSH config and restarts the app, dropping its
connections, as a real deploy does.

The same load, the same hosts and the same deploy command, run two ways: all at once (today's
Deploy stage: `inventory`, then the command over every host) drops requests, which proves the load
sees the damage; `rollout` drops none, never lets HAProxy's hosts in service fall below
`min_healthy`, and leaves the site's recorded revision to the pipeline's Record revision stage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from helper.sandbox.balancer import haproxy
from helper.sandbox.balancer.balanced_site import balanced_site, start_app
from helper.sandbox.balancer.load import Load, Sampler
from helper.sandbox.hosts import available
from tests.polling import wait_for

pytestmark = pytest.mark.skipif(
    (available() or haproxy.available()) is not None and os.environ.get("CI") != "true",
    reason=str(available() or haproxy.available()))

HOSTS = 4
ROLLOUT = {"batch": 1, "min_healthy": 3, "drain_timeout_s": 10, "healthy_timeout_s": 15}
# Enough requests that a restart's window (the app is down ~0.1-0.3 s) cannot fall between two.
LOAD_WORKERS = 4


def helper(*args: str, env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helper", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture
def site(aws, tmp_path, network):
    with balanced_site(aws, tmp_path, network, HOSTS, delay_s=1, rollout=ROLLOUT) as found:
        yield found


def test_all_at_once_drops_requests_and_a_rollout_drops_none(site, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = tmp_path / "out"
    out.mkdir()
    # Today's Deploy stage: the inventory for every host, then the deploy command once over all of them.
    listed = helper("inventory", "-c", str(site.config), "--json", str(out / "hosts.json"), "--ssh-config",
                    str(out / "ssh_config"), "--known-hosts", str(out / "known_hosts"), env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    with Load(site.port, workers=LOAD_WORKERS) as at_once:
        deployed = subprocess.run([sys.executable, str(site.deploy_script)], capture_output=True, text=True,
                                  timeout=120, env={**env, "REVISION": "v2", "DEPLOY_JSON": str(out / "hosts.json"),
                                                    "SSH_CONFIG": str(out / "ssh_config")})
        site.wait_healthy()
    assert deployed.returncode == 0, deployed.stderr
    assert set(site.serving().values()) == {"v2"}
    assert at_once.failures, f"all at once dropped nothing in {at_once.sent} requests: the load cannot see damage"

    # The same deploy command, batch by batch behind the load balancer.
    with Load(site.port, workers=LOAD_WORKERS) as load, Sampler(site.members, site.tg_arn) as sampled:
        rolled = helper("rollout", "-c", str(site.config), "--site", "web", "--revision", "v3",
                        "--report", str(tmp_path / "report.json"), "--out-dir", str(tmp_path / "rollout"),
                        "--", sys.executable, str(site.deploy_script), env=env, cwd=tmp_path)
    assert rolled.returncode == 0, rolled.stderr
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:3]}"
    assert load.sent > 100 and set(load.revisions) == {"v2", "v3"}
    assert min(sampled.counts) >= ROLLOUT["min_healthy"], sampled.counts
    assert min(sampled.counts) < HOSTS  # the sampler saw hosts leave: it could see a breach
    assert set(site.serving().values()) == {"v3"}
    report = json.loads((tmp_path / "report.json").read_text())
    assert sorted(h["status"] for h in report["hosts"]) == ["done"] * HOSTS
    # The rollout never moves the site's record; the Jenkinsfile's Record revision stage does, after it.
    assert (tmp_path / "revisions" / "web.revision").read_text().strip() == "v1"


def test_a_failed_batch_under_traffic_rolls_back_and_the_failed_host_stays_out(site, tmp_path):
    """on_failure: rollback. The host whose deploy fails stays out of HAProxy's rotation (a person
    decides); the batches done before it get the previous revision again; nobody sees an error."""
    config = yaml.safe_load(site.config.read_text())
    config["sites"]["web"]["rollout"]["on_failure"] = "rollback"
    site.config.write_text(yaml.safe_dump(config))
    failing = site.instance_ids[2]
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "FAIL_HOSTS": failing}
    with Load(site.port, workers=LOAD_WORKERS) as load:
        rolled = helper("rollout", "-c", str(site.config), "--site", "web", "--revision", "v2",
                        "--report", str(tmp_path / "report.json"), "--out-dir", str(tmp_path / "rollout"),
                        "--", sys.executable, str(site.deploy_script), env=env, cwd=tmp_path)
    assert rolled.returncode == 1, rolled.stderr
    statuses = {h["instance_id"]: h["status"] for h in json.loads((tmp_path / "report.json").read_text())["hosts"]}
    assert statuses[failing] == "failed"
    assert {s for i, s in statuses.items() if i != failing} <= {"rolled_back", "not_begun"}
    assert "rolled_back" in statuses.values() or min(h["batch"] for h in json.loads(
        (tmp_path / "report.json").read_text())["hosts"] if h["instance_id"] == failing) == 1
    assert site.members.in_service(site.tg_arn) == sorted(i for i in site.instance_ids if i != failing)
    assert set(site.serving().values()) == {"v1"}  # the failed host never restarted; the rest rolled back
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:3]}"


# A deploy that "succeeds" but leaves the app down: the rollout waits for healthy until it is killed.
STOP_APP = """\
import json, os, subprocess, sys
for site in json.load(open(os.environ["DEPLOY_JSON"]))["sites"].values():
    for host in site:
        subprocess.run(["ssh", "-F", os.environ["SSH_CONFIG"], host["alias"], "kill $(cat /srv/app/pid)"], check=True)
"""


def test_a_rollout_killed_mid_admit_is_on_record_and_abort_leaves_no_host_half_in(site, tmp_path):
    """Killed while it waits for a batch to turn healthy: the host is registered but its record
    stays; status says so, abort clears it, and no request failed (HAProxy never sent any to it)."""
    (tmp_path / "stop_app.py").write_text(STOP_APP)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    args = [sys.executable, "-m", "helper", "rollout", "-c", str(site.config), "--site", "web", "--revision", "v2"]
    with Load(site.port, workers=LOAD_WORKERS) as load:
        process = subprocess.Popen([*args, "--", sys.executable, str(tmp_path / "stop_app.py")], cwd=tmp_path,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            def admitting():
                drained = {i for _, i, state in site.members.transitions if state == "drain"}
                back = [i for _, i, state in site.members.transitions[-len(drained) or None:] if state == "ready"]
                return drained and back and back[0] in drained and back[0]
            host = wait_for(admitting, timeout_s=60, what="batch 1 registered again, waiting to turn healthy")
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        status = helper("rollout", "status", "-c", str(site.config), "--site", "web", env=env, cwd=tmp_path)
        assert status.returncode == 1 and f"{host} out" in status.stdout, status.stdout
        aborted = helper("rollout", "abort", "-c", str(site.config), "--site", "web", env=env, cwd=tmp_path)
        assert aborted.returncode == 0, aborted.stderr
        start_app(site.hosts[host], "v1")
        site.wait_healthy()
    assert helper("rollout", "status", "-c", str(site.config), "--site", "web", env=env, cwd=tmp_path).returncode == 0
    assert [s for _, i, s in site.members.transitions if i == host].count("drain") == 1  # deregistered once
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:3]}"
