"""Rolling deploy against all at once, under load, through the sandbox's real load balancer.

    sudo python bench/rollout.py [--hosts 20] [--batch 25%] [--delay-s 2]

A site of --hosts real SSH hosts (network namespaces, each with sshd and the sandbox's web app)
behind HAProxy, driven by moto's target group (helper/sandbox/aws/balanced.py), with a
deregistration delay of --delay-s. The deploy command (helper/sandbox/balancer/balanced_site.py) connects
to each host of its batch over SSH and restarts its app, which drops its connections. The same
load runs through both ways of deploying:

- all at once, today's Deploy stage: `inventory`, then the command over every host;
- `rollout`, batch --batch, min_healthy 75%.

Printed: requests sent and failed (target 0 for the rollout); the rollout's wall time against
its lower bound, the sum over batches of drain + deploy + healthy, where deploy is the deploy
command's own wall time for that batch (it appends it to DEPLOY_TIMES), healthy is HAProxy's
rise x interval, and drain is how long the load balancer itself took to drain that batch (its
slowest host, from deregister to out: with nothing in flight ELB ends a drain at once, and so does
the sandbox, checking every 0.1 s on its own; a request in flight holds it up to the delay), so
the bound is what no rollout could beat on this load balancer; target within 1.2x; AWS calls per
host, counted at the moto server;
and the fewest hosts in service that HAProxy's stats showed. Needs root and Debian's haproxy.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helper.sandbox.aws.server import SANDBOX_ENV, MotoServer  # noqa: E402
from helper.sandbox.balancer import haproxy  # noqa: E402
from helper.sandbox.balancer.balanced_site import balanced_site  # noqa: E402
from helper.sandbox.balancer.load import Load, Sampler  # noqa: E402
from helper.sandbox.hosts import HostNetwork, available  # noqa: E402

LOAD_WORKERS = 4
TARGET_RATIO = 1.2


class CountingApp:
    """WSGI in front of the moto server: counts each AWS action by name."""

    def __init__(self, app) -> None:
        self.app, self.calls, self._lock = app, Counter(), threading.Lock()

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        action = (environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
                  or urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0])
        with self._lock:
            self.calls[action] += 1
        return self.app(environ, start_response)

    def take(self) -> Counter:
        with self._lock:
            taken, self.calls = self.calls, Counter()
        return taken


def helper(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helper", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=1800)


def batches_of(hosts: int, batch: str) -> int:
    size = max(1, math.floor(hosts * int(batch[:-1]) / 100)) if batch.endswith("%") else int(batch)
    return math.ceil(hosts / size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--batch", default="25%")
    parser.add_argument("--delay-s", type=float, default=2.0)
    args = parser.parse_args()
    if why := available() or haproxy.available():
        print(f"bench/rollout.py: {why}", file=sys.stderr)
        return 2
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per AWS call otherwise
    server = MotoServer()
    url = server.start()
    counting = CountingApp(server._server.app)
    server._server.app = counting
    env = {**os.environ, **SANDBOX_ENV, "AWS_ENDPOINT_URL": url, "PYTHONPATH": str(ROOT),
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    rollout = {"batch": args.batch, "min_healthy": "75%", "drain_timeout_s": args.delay_s + 10,
               "healthy_timeout_s": 60}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp_name, HostNetwork() as network, \
                balanced_site(url, Path(tmp_name), network, args.hosts, delay_s=args.delay_s,
                              rollout=rollout) as site:
            tmp = Path(tmp_name)
            out = tmp / "out"
            out.mkdir()
            counting.take()
            with Load(site.port, workers=LOAD_WORKERS) as at_once:
                started = time.monotonic()
                listed = helper("inventory", "-c", str(site.config), "--json", str(out / "hosts.json"),
                                "--ssh-config", str(out / "ssh_config"), "--known-hosts", str(out / "known_hosts"),
                                env=env, cwd=tmp)
                deploy_started = time.monotonic()
                deployed = subprocess.run([sys.executable, str(site.deploy_script)], capture_output=True, text=True,
                                          env={**env, "REVISION": "v2", "DEPLOY_JSON": str(out / "hosts.json"),
                                               "SSH_CONFIG": str(out / "ssh_config")}, timeout=600)
                deploy_s = time.monotonic() - deploy_started
                at_once_s = time.monotonic() - started
                site.wait_healthy(60)
            at_once_calls = counting.take()
            if listed.returncode or deployed.returncode:
                print(listed.stderr + deployed.stderr, file=sys.stderr)
                return 1

            times = tmp / "deploy_times"
            with Load(site.port, workers=LOAD_WORKERS) as load, Sampler(site.members, site.tg_arn) as sampled:
                site.members.drains_s.clear()
                started = time.monotonic()
                rolled = helper("rollout", "-c", str(site.config), "--site", "web", "--revision", "v3",
                                "--out-dir", str(tmp / "rollout"), "--report", str(tmp / "report.json"),
                                "--", sys.executable, str(site.deploy_script),
                                env={**env, "DEPLOY_TIMES": str(times)}, cwd=tmp)
                rollout_s = time.monotonic() - started
            rollout_calls = counting.take()
            if rolled.returncode:
                print(rolled.stdout + rolled.stderr, file=sys.stderr)
                return 1
            serving = set(site.serving().values())
            batch_deploys_s = [float(line.split()[1]) for line in times.read_text().splitlines()]
            batch_of = {h["instance_id"]: h["batch"] for h in json.loads((tmp / "report.json").read_text())["hosts"]}
            batch_drains_s: dict[int, float] = {}
            for instance, drained_s in site.members.drains_s:
                batch_drains_s[batch_of[instance]] = max(batch_drains_s.get(batch_of[instance], 0.0), drained_s)
    finally:
        server.stop()

    batches = batches_of(args.hosts, args.batch)
    healthy_s = haproxy.CHECK_RISE * haproxy.CHECK_INTERVAL_MS / 1000
    drains_s = [batch_drains_s.get(n, 0.0) for n in sorted(batch_drains_s)]
    bound_s = sum(drains_s) + sum(d + healthy_s for d in batch_deploys_s)
    print(f"site: {args.hosts} hosts behind HAProxy, batch {args.batch} ({batches} batches), "
          f"deregistration delay {args.delay_s:g} s, {LOAD_WORKERS} load workers")
    print(f"{'':28} {'all at once':>14} {'rollout':>14}")
    print(f"{'requests sent':28} {at_once.sent:>14} {load.sent:>14}")
    print(f"{'requests failed':28} {len(at_once.failures):>14} {len(load.failures):>14}   target 0 for rollout")
    print(f"{'wall s (deploy part)':28} {at_once_s:>14.1f} {rollout_s:>14.1f}")
    print(f"{'AWS calls per host':28} {sum(at_once_calls.values()) / args.hosts:>14.1f} "
          f"{sum(rollout_calls.values()) / args.hosts:>14.1f}")
    print(f"{'fewest hosts in service':28} {'':>14} {min(sampled.counts):>14}   min_healthy 75% = "
          f"{math.ceil(args.hosts * 0.75)}")
    ratio = rollout_s / bound_s
    # The same bound with each batch paying the whole deregistration delay, as it does on AWS when a
    # request is still in flight: what a user with long requests would see as the floor.
    delay_bound_s = sum(args.delay_s + d + healthy_s for d in batch_deploys_s)
    print(f"rollout wall / lower bound: {rollout_s:.1f} s / {bound_s:.1f} s = {ratio:.2f}x "
          f"(target <= {TARGET_RATIO}x: {'met' if ratio <= TARGET_RATIO else 'SHORT'}); "
          f"batch drains {', '.join(f'{d:.2f}' for d in drains_s)} s, "
          f"deploys {', '.join(f'{d:.2f}' for d in batch_deploys_s)} s, healthy {healthy_s:.1f} s each; "
          f"all at once: one deploy of every host {deploy_s:.2f} s")
    print(f"with the full {args.delay_s:g} s delay paid each batch: {rollout_s:.1f} s / {delay_bound_s:.1f} s = "
          f"{rollout_s / delay_bound_s:.2f}x")
    print(f"hosts now serve: {sorted(serving)}")
    print("rollout calls: " + ", ".join(f"{k} {v}" for k, v in rollout_calls.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
