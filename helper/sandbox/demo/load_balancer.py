"""`sandbox up --hosts`: the demo's load balancers carry real traffic, through Debian's HAProxy.

With real hosts, every demo instance runs the sandbox's web app (balancer/webapp.py) from the
moment its sshd is up, as an image's init starts its service, at the revision the demo's
instances start with. One HAProxy process has a backend per demo load balancer (shop's and
workers' classic ELBs, api's target group), driven by moto's register and deregister calls
(aws/balanced.py): a scale-out's instance takes requests only once its deploy completed and the
group registered it, and a rollout drains each batch for real. `sandbox status` prints each load
balancer's local URL.

HAProxy is a process of its own: its pid and start time go into hosts.json the moment it runs, so
`sandbox down` ends it (and only it: the same process, running our config) after the serve
process was killed. Without HAProxy installed the hosts still run, and the state says why there
is no load balancer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from pathlib import Path

from helper.errors import HelperError
from helper.sandbox.aws import balanced, fleet
from helper.sandbox.balancer import haproxy
from helper.sandbox.balancer.balanced_site import start_app
from helper.sandbox.balancer.members import Members
from helper.sandbox.demo import records
from helper.sandbox.demo.jobs import INITIAL_REVISION
from helper.sandbox.hosts import SshHost

log = logging.getLogger(__name__)

HAPROXY_DIR = "haproxy"  # its config, admin socket and log, under the state directory


def boot_app(host: SshHost) -> None:
    """FleetHosts' on_boot: the instance's service starts with what its image carries."""
    start_app(host, INITIAL_REVISION)


def _bindings(aws_url: str, demo: fleet.DemoFleet) -> dict[str, str]:
    """HAProxy backend -> the load balancer's key (aws/balanced.py)."""
    elbv2 = fleet.client("elbv2", aws_url, fleet.API_REGION)
    (api_tg,) = elbv2.describe_target_groups()["TargetGroups"]
    return {"shop": balanced.classic_key("shop-elb"), "workers": balanced.classic_key(fleet.WORKERS_ELB),
            "api": api_tg["TargetGroupArn"]}


def _register_again(aws_url: str, demo: fleet.DemoFleet, bindings: dict[str, str]) -> None:
    """moto registered the seeded instances before HAProxy ran: registering again puts them in it."""
    elb = fleet.client("elb", aws_url, demo.region)
    for name in ("shop-elb", fleet.WORKERS_ELB):
        (described,) = elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"]
        if described["Instances"]:
            elb.register_instances_with_load_balancer(LoadBalancerName=name, Instances=described["Instances"])
    elbv2 = fleet.client("elbv2", aws_url, fleet.API_REGION)
    targets = [d["Target"] for d in elbv2.describe_target_health(TargetGroupArn=bindings["api"])[
        "TargetHealthDescriptions"]]
    if targets:
        elbv2.register_targets(TargetGroupArn=bindings["api"], Targets=targets)


def start(directory: Path, aws_url: str, demo: fleet.DemoFleet, running: contextlib.ExitStack,
          record_pid) -> dict:
    """HAProxy in front of the demo's hosts; the state's entry (backend -> URL, or why there is none).
    `record_pid(pid, started)` writes HAProxy's process into hosts.json before anything else happens."""
    missing = haproxy.available()
    if missing is not None:
        log.warning("event=no_load_balancer reason=%r", missing)
        return {"unavailable": missing}
    bindings = _bindings(aws_url, demo)
    proxy = haproxy.Haproxy(directory / HAPROXY_DIR, sorted(bindings))
    try:
        proxy.start()
    except haproxy.HaproxyError as error:
        raise HelperError(f"--hosts: the sandbox's load balancer did not start: {error}") from None
    running.callback(shutil.rmtree, proxy.workdir, ignore_errors=True)
    running.callback(proxy.stop)
    record_pid(proxy.pid, records.process_start(proxy.pid))
    members = Members(proxy)
    running.callback(members.close)
    for backend, key in bindings.items():
        members.bind(key, backend)
    balanced.attach(members)
    running.callback(balanced.attach, None)
    _register_again(aws_url, demo, bindings)
    log.info("event=load_balancer pid=%s ports=%s", proxy.pid, proxy.ports)
    return {backend: f"http://127.0.0.1:{proxy.port(backend)}" for backend in sorted(bindings)}


def _is_our_haproxy(pid: int, started: str | None, directory: Path) -> bool:
    """Still the HAProxy this sandbox started (not a reused pid): same start, our binary, our config."""
    words = records.process_argv(pid, started) if started is not None else None
    return bool(words) and words[0] == haproxy.HAPROXY and str(directory / HAPROXY_DIR / "haproxy.cfg") in words


def sweep(directory: Path, record: dict) -> list[str]:
    """End the recorded HAProxy and remove its directory; what went, one entry each."""
    removed = []
    pid = record.get("haproxy_pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and \
            _is_our_haproxy(pid, record.get("haproxy_start"), directory):
        os.kill(pid, signal.SIGKILL)
        removed.append(f"haproxy (pid {pid})")
    workdir = directory / HAPROXY_DIR
    if workdir.is_dir() and not workdir.is_symlink():
        shutil.rmtree(workdir, ignore_errors=True)
        removed.append(str(workdir))
    return removed
