"""`make demo`'s last part: a rolling deploy of a small site under load, through a real load balancer.

    sudo python -m helper.sandbox.demo.rollout_demo [--hosts 4]

A site `web` of real SSH hosts behind HAProxy (helper/sandbox/balancer/), fed by an in-process
moto (the balancer's moto patches must live in moto's process, so not the background `sandbox
up`), each host serving a small app at v1. `rollout` deploys v2 batch by batch while a load runs;
the demo prints the rollout's own lines, then one summary: requests sent and failed, what the hosts
serve now, and the fewest hosts in service. Exit 1 if a request failed or the rollout did.
Without root or HAProxy it says why in one line and exits 0: the rest of the demo ran.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from helper.sandbox.aws.server import SANDBOX_ENV, MotoServer
from helper.sandbox.balancer import haproxy
from helper.sandbox.balancer.balanced_site import balanced_site
from helper.sandbox.balancer.load import Load, Sampler
from helper.sandbox.hosts import HostNetwork, available

MIN_HEALTHY = "75%"
LOAD_WORKERS = 2  # "a little load": the demo shares the machine with everything else
ROLLOUT_TIMEOUT_S = 300


def run(hosts: int, out=sys.stdout) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per AWS call otherwise
    server = MotoServer()
    url = server.start()
    env = {**os.environ, **SANDBOX_ENV, "AWS_ENDPOINT_URL": url, "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    rollout = {"batch": 1, "min_healthy": MIN_HEALTHY, "drain_timeout_s": 10, "healthy_timeout_s": 30}
    try:
        with tempfile.TemporaryDirectory(prefix="adh-rollout-demo-") as tmp_name, HostNetwork() as network, \
                balanced_site(url, Path(tmp_name), network, hosts, delay_s=1, rollout=rollout) as site:
            print(f"site web: {hosts} hosts behind HAProxy (127.0.0.1:{site.port}), serving v1; "
                  f"rolling to v2 under load", file=out, flush=True)
            with Load(site.port, workers=LOAD_WORKERS) as load, Sampler(site.members, site.tg_arn) as sampled:
                rolled = subprocess.run(
                    [sys.executable, "-m", "helper", "rollout", "-c", str(site.config), "--site", "web",
                     "--revision", "v2", "--out-dir", str(Path(tmp_name) / "rollout"), "--",
                     sys.executable, str(site.deploy_script)],
                    cwd=tmp_name, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=ROLLOUT_TIMEOUT_S)
            serving = sorted(set(site.serving().values()))
    finally:
        server.stop()
    floor = math.ceil(hosts * int(MIN_HEALTHY.rstrip("%")) / 100)
    print(f"requests: {load.sent} sent, {len(load.failures)} failed; hosts now serve {', '.join(serving)}; "
          f"fewest in service {min(sampled.counts, default=0)} (min_healthy {floor})", file=out, flush=True)
    return 0 if rolled.returncode == 0 and not load.failures and serving == ["v2"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helper.sandbox.demo.rollout_demo", description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=4)
    args = parser.parse_args(argv)
    why = available() or haproxy.available()
    if why:
        print(f"rolling deploy demo skipped: {why}")
        return 0
    return run(args.hosts)


if __name__ == "__main__":
    sys.exit(main())
