"""A site behind a real load balancer, for the tests, bench/rollout.py and `make demo`: moto's target
group driving HAProxy (helper/sandbox/aws/balanced.py) and a real SSH host per instance running the
sandbox's web app (helper/sandbox/balancer/webapp.py). Needs root (network namespaces) and HAProxy.

The deploy command (DEPLOY_APP) is what a real one does: for each host of its batch it connects
with `ssh -F $SSH_CONFIG` and restarts the app at $REVISION, which drops the connections the app
had. FAIL_HOSTS (instance ids) makes the deploy of those hosts fail, as a broken build would;
DEPLOY_TIMES names a file to which each run appends its host count and wall seconds (from its
process's start, as the kernel recorded it, to its end).
"""

from __future__ import annotations

import sys
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from helper.sandbox.aws import balanced, fleet
from helper.sandbox.balancer import haproxy, webapp
from helper.sandbox.balancer.members import Members
from helper.sandbox.hosts import HostNetwork, SshHost

REGION = "us-east-1"
APP_DIR = "/srv/app"  # under the host's private deploy root
APP_PORT = 8080  # fleet.alb_site's target group port
WEBAPP = Path(webapp.__file__).resolve()
POLL_INTERVAL_S = 0.02

DEPLOY_APP = textwrap.dedent(f"""\
    import json, os, subprocess, sys, time
    from concurrent.futures import ThreadPoolExecutor
    hosts = [h for site in json.load(open(os.environ["DEPLOY_JSON"]))["sites"].values() for h in site]
    failing = set(os.environ.get("FAIL_HOSTS", "").split())
    def process_start_s():
        # When the kernel started this process, on CLOCK_BOOTTIME (/proc/self/stat field 22, in
        # clock ticks): the command's wall time includes its interpreter's start, as any deploy
        # command's does. Where that cannot be read, from here.
        try:
            ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
            return ticks / os.sysconf("SC_CLK_TCK"), time.clock_gettime(time.CLOCK_BOOTTIME)
        except (OSError, ValueError, IndexError):
            return None, None
    began_s, now_s = process_start_s()
    started = time.monotonic() - (now_s - began_s if began_s is not None else 0.0)
    def deploy(host):
        if host["instance_id"] in failing:
            return f"{{host['alias']}}: refused (FAIL_HOSTS)"
        done = subprocess.run(["ssh", "-F", os.environ["SSH_CONFIG"], host["alias"], {sys.executable!r},
                               {str(WEBAPP)!r}, "restart", "--dir", {APP_DIR!r}, "--port", "{APP_PORT}",
                               "--revision", os.environ["REVISION"]], capture_output=True, text=True)
        return None if done.returncode == 0 else f"{{host['alias']}}: {{done.stderr.strip()}}"
    with ThreadPoolExecutor(max(1, len(hosts))) as pool:
        errors = [e for e in pool.map(deploy, hosts) if e]
    print("\\n".join(errors), file=sys.stderr)
    if os.environ.get("DEPLOY_TIMES"):  # the benchmark's lower bound: each run's own wall time
        with open(os.environ["DEPLOY_TIMES"], "a") as times:
            times.write(f"{{len(hosts)}} {{time.monotonic() - started:.3f}}\\n")
    sys.exit(1 if errors else 0)
""")


def start_app(host: SshHost, revision: str) -> None:
    host.run([sys.executable, str(WEBAPP), "restart", "--dir", APP_DIR, "--port", str(APP_PORT),
              "--revision", revision], timeout_s=30)


@dataclass
class BalancedSite:
    tg_arn: str
    instance_ids: list[str]
    hosts: dict[str, SshHost]  # instance id -> its host
    proxy: haproxy.Haproxy
    members: Members
    config: Path
    deploy_script: Path

    @property
    def port(self) -> int:
        return self.proxy.port("web")

    def serving(self) -> dict[str, str]:
        """instance -> the revision its app answers with now, asked on the host itself."""
        return {i: host.run(["python3", "-c", f"import urllib.request;print(urllib.request.urlopen("
                                              f"'http://127.0.0.1:{APP_PORT}/',timeout=5).read().decode().strip())"]
                             ).stdout.strip() for i, host in self.hosts.items()}

    def wait_healthy(self, timeout_s: float = 20.0) -> None:
        """Until the target group says every host is healthy."""
        deadline = time.monotonic() + timeout_s
        while (states := {i: self.members.health(self.tg_arn, i) for i in self.instance_ids}) and \
                set(states.values()) != {"healthy"}:
            if time.monotonic() > deadline:
                raise AssertionError(f"not all healthy after {timeout_s:g} s: {states}")
            time.sleep(POLL_INTERVAL_S)


@contextmanager
def balanced_site(aws_url: str, tmp: Path, network: HostNetwork, count: int, *, delay_s: float = 1.0,
                  rollout: dict | None = None, revision: str = "v1", extra_backends: tuple[str, ...] = ()):
    """Site `web`: `count` instances behind target group web-tg (port 8080) and HAProxy, each
    serving `revision`; a deploy.yml naming it, with `rollout:` if given. HAProxy also has a
    backend (and frontend) for each of `extra_backends`, for a test to bind more load balancers."""
    elbv2, ec2 = fleet.client("elbv2", aws_url, REGION), fleet.client("ec2", aws_url, REGION)
    # In a default subnet: moto gives such instances addresses of the hosts' network (172.31/16).
    _, tg_arn = fleet.alb_site(aws_url, REGION, "web", count, subnet_id=fleet.default_subnets(ec2)[0])
    elbv2.modify_target_group_attributes(TargetGroupArn=tg_arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": str(int(delay_s))}])
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["web"]}])["Reservations"]
    ips = {i["InstanceId"]: i["PrivateIpAddress"] for r in reservations for i in r["Instances"]}
    hosts = {instance: network.add_host(ip) for instance, ip in sorted(ips.items())}
    for host in hosts.values():
        start_app(host, revision)
    proxy = haproxy.Haproxy(tmp / "haproxy", ["web", *extra_backends])
    proxy.start()
    members = Members(proxy)
    members.bind(tg_arn, "web")
    balanced.attach(members)
    try:
        # moto registered them before HAProxy existed: registering again puts them in its backend.
        elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": i} for i in sorted(hosts)])
        config = tmp / "deploy.yml"
        site = {"target_group": tg_arn, "region": REGION, "user": "root", "identity_file": str(network.deploy_key)}
        if rollout is not None:
            site["rollout"] = rollout
        (tmp / "revisions").mkdir(exist_ok=True)
        (tmp / "revisions" / "web.revision").write_text(f"{revision}\n")
        config.write_text(yaml.safe_dump({"path": {"revision_dir": str(tmp / "revisions")},
                                          "sites": {"web": site}}))
        script = tmp / "deploy_app.py"
        script.write_text(DEPLOY_APP)
        found = BalancedSite(tg_arn, sorted(hosts), hosts, proxy, members, config, script)
        found.wait_healthy()
        yield found
    finally:
        balanced.attach(None)
        members.close()
        proxy.stop()
