"""Benchmark (not a test): the 1,000-launch burst served by several consumer replicas at once.

`bench/lifecycle.py --burst --replicas N [--kill-after-s S] [--aws-latency-ms MS]` runs the burst of
bench/lifecycle_burst.py twice in one run: first with one consumer (the peer), then with N
consumers on the same queue, moto and Jenkins emulator, each its own process; with
`--kill-after-s`, the first replica is SIGKILLed that many seconds after the first launch, so
what it held comes back to the others after the visibility timeout; `--aws-latency-ms` makes every AWS
call of both runs wait that long in moto, as a region's round trip does. For each run it prints:

- Jenkins builds, and duplicate builds: builds beyond the first that deploy an instance, read
  from the emulator's own builds (their INSTANCE_IDS); target 0;
- lost actions: launches not completed with CONTINUE by the end, read from moto's own record
  of completions; target 0;
- p95 notification -> build queued, and the worst group (as the burst prints them);

and each N-replica figure as a ratio against the one-replica run of the same invocation.
"""

from __future__ import annotations

import contextlib
import math
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

from bench import lifecycle_burst as burst
from bench.lifecycle_parts import (
    JENKINS_TOKEN,
    JENKINS_USER,
    completions,
    notifications,
    percentile,
    start_consumer,
    start_moto,
    stop_process,
    wait_for_log,
)
from helper.sandbox.aws import fleet

# Short, so a SIGKILLed replica's messages come back to the others within the run (the
# consumer renews a live claim's invisibility long before it runs out).
VISIBILITY_TIMEOUT_S = 20


def duplicate_builds(ran: list[dict]) -> int:
    """Builds beyond the first that deploy each instance: 0 when every instance got one build."""
    per_instance = Counter(i for build in ran for i in build["instances"])
    return sum(n - 1 for n in per_instance.values() if n > 1)


def lost_actions(launched: set[str], records: list[dict]) -> int:
    """Launched instances never completed with CONTINUE (ABANDONed, timed out, or still waiting)."""
    return len(launched - {r["instance"] for r in records if r["result"] == "CONTINUE"})


def one_run(replicas: int, kill_after_s: float | None, latency_ms: float = 0.0) -> dict:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-replicas-")))
        url, tap, moto = start_moto(stack, workdir, latency_ms)
        jenkins = burst.start_jenkins(stack)
        queue_url = burst.seed(url)
        config = burst.write_config(workdir, queue_url, jenkins.url)
        doc = yaml.safe_load(config.read_text())
        doc["lifecycle"]["visibility_timeout_s"] = VISIBILITY_TIMEOUT_S
        config.write_text(yaml.safe_dump(doc))
        consumers = []
        for n in range(replicas):
            log_path = workdir / f"consumer-{n}.log"
            consumers.append((start_consumer(stack, config, url, log_path, JENKINS_USER, JENKINS_TOKEN), log_path))
        for process, log_path in consumers:
            wait_for_log(log_path, "consumer_started", process)
        if kill_after_s is not None:
            killer = threading.Timer(kill_after_s, consumers[0][0].send_signal, args=(signal.SIGKILL,))
            killer.daemon = True
            killer.start()
            stack.callback(killer.cancel)
        asg = fleet.client("autoscaling", url, burst.REGION)
        for group in burst.GROUPS:
            for capacity in range(burst.LAUNCH_STEP, burst.LAUNCHES_PER_GROUP + 1, burst.LAUNCH_STEP):
                asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=capacity)
        survivor = consumers[-1][0]
        done_at = burst.watch(workdir, survivor)
        for process, _ in consumers:
            stop_process(process)
        notified = notifications(tap)
        ran = burst.builds(jenkins)
        records = completions(workdir)
        stop_process(moto)
    queued: dict[str, float] = {}
    for build in sorted(ran, key=lambda b: b["queued_s"]):
        for instance in build["instances"]:
            queued.setdefault(instance, build["queued_s"])
    latencies = [queued[i] - a.notified_at.timestamp() for i, a in notified.items() if i in queued]
    worst = -math.inf
    for group in burst.GROUPS:
        mine = {i for i, a in notified.items() if a.group == group}
        first = min((notified[i].notified_at.timestamp() for i in mine), default=math.nan)
        build_s = sum(b["duration_s"] for b in ran if b["instances"] & mine)
        elapsed = done_at.get(group, math.nan) - first
        worst = max(worst, math.inf if math.isnan(elapsed) else elapsed - build_s)
    return {"builds": len(ran), "duplicates": duplicate_builds(ran), "lost": lost_actions(set(notified), records),
            "notified": len(notified), "p95": percentile(latencies, 95), "worst": worst}


def run(replicas: int, kill_after_s: float | None, latency_ms: float = 0.0) -> int:
    started = time.monotonic()
    peer = one_run(1, None, latency_ms)
    many = one_run(replicas, kill_after_s, latency_ms)
    killed = f", one SIGKILLed {kill_after_s:g} s after the first launch" if kill_after_s is not None else ""
    print(f"lifecycle burst with replicas: {burst.LAUNCHES_PER_GROUP * len(burst.GROUPS)} launches over "
          f"{len(burst.GROUPS)} groups; 1 consumer (the peer) vs {replicas} consumers{killed}; visibility timeout "
          f"{VISIBILITY_TIMEOUT_S} s; {latency_ms:g} ms added to each AWS call; both runs {time.monotonic() - started:.0f} s")
    print(f"{'figure':<40} {'1 replica':>10} {f'{replicas} replicas':>11} {'ratio':>7}  target")
    met = True
    for name, key, target, ok in (
            ("notifications", "notified", "(info)", lambda a, b: True),
            ("Jenkins builds", "builds", "ratio <= 1", lambda a, b: b <= a),
            ("duplicate builds", "duplicates", "0", lambda a, b: b == 0),
            ("lost actions", "lost", "0", lambda a, b: b == 0),
            ("notification -> build queued p95 (s)", "p95", "ratio <= 1", lambda a, b: b <= a),
            ("worst group: InService minus builds (s)", "worst", "(info)", lambda a, b: True)):
        a, b = peer[key], many[key]
        ratio = b / a if a else math.nan
        good = ok(a, b)
        met = met and good
        print(f"{name:<40} {a:>10.2f} {b:>11.2f} {ratio:>7.2f}  {target}{'' if good else '  SHORT'}")
    return 0 if met else 1
