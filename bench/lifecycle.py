"""Benchmark (not a test): a burst of 200 launches through the lifecycle consumer.

moto with the project's lifecycle hooks runs in a child process, the Jenkins emulator in
this one with a `deploy` job that succeeds at once, and the consumer as its own process
(`python -m helper -v consume`), as it runs in production. One SetDesiredCapacity takes
the group from 0 to 200; we wait until all 200 are InService and print:

- seconds from the first notification to the last completion (all InService), target <= 60 s;
- Jenkins builds, target <= 20 (200 launches in batches of at most 20 need 10);
- p50/p95 seconds from an instance's notification (its `Time`) to the queueing of the build
  that deploys it (the queue item's inQueueSince), target p95 <= batch_window_s + 2 s;
- the consumer's peak RSS (VmHWM), target <= 100 MB.

    .venv/bin/python bench/lifecycle.py [--instances 200]
    .venv/bin/python bench/lifecycle.py --burst     # 1,000 launches, 10 groups, 5 sites
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import byte_compile_ours  # noqa: E402
from bench.lifecycle_parts import (  # noqa: E402
    BATCH_MAX_INSTANCES,
    BATCH_WINDOW_S,
    JENKINS_TOKEN,
    JENKINS_USER,
    POLL_INTERVAL_S,
    notifications,
    peak_rss_mb,
    percentile,
    report,
    start_consumer,
    start_moto,
    stop_process,
    wait_for_log,
)
from helper.consumer.jenkins_client import BUILD_PARAMETERS  # noqa: E402
from helper.sandbox.aws import fleet  # noqa: E402
from helper.sandbox.jenkins.emulator import JenkinsEmulator  # noqa: E402

REGION = "us-east-1"
GROUP, SITE, JOB = "bench-asg", "bench", "deploy"
# The hook's HeartbeatTimeout: long enough that no action times out if the consumer is slow,
# so a slow run shows up as a missed target rather than as ABANDONed instances.
HEARTBEAT_TIMEOUT_S = 300
# How often we ask Auto Scaling whether everything is InService: the completion time is
# known to this precision. Each describe of 200 instances costs moto tens of milliseconds.
WATCH_INTERVAL_S = 0.25
# Give up well after the target, so a miss is reported with its figures instead of hanging.
GIVE_UP_S = 240.0

TARGET_COMPLETE_S = 60.0
TARGET_BUILDS = 20
TARGET_P95_QUEUED_S = BATCH_WINDOW_S + 2.0
TARGET_RSS_MB = 100.0

def start_jenkins(stack: contextlib.ExitStack) -> JenkinsEmulator:
    jenkins = JenkinsEmulator(users={}, api_tokens={JENKINS_USER: JENKINS_TOKEN}, executors=2)
    jenkins.start()
    stack.callback(jenkins.stop)
    jenkins.add_job(JOB, [{"name": p, "default": ""} for p in BUILD_PARAMETERS], command="true")
    return jenkins


def seed(url: str, instances: int) -> str:
    """The group (empty), its hook queue with a DLQ, and the launching hook; returns the queue URL."""
    fleet.auto_scaling_site(url, REGION, GROUP, 0)
    fleet.client("autoscaling", url, REGION).update_auto_scaling_group(
        AutoScalingGroupName=GROUP, MaxSize=instances)
    queue_url, queue_arn, _ = fleet.lifecycle_queue(url, REGION, "bench-hooks")
    fleet.launch_hook(url, REGION, GROUP, queue_arn, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S)
    return queue_url


def write_config(workdir: Path, queue_url: str, jenkins_url: str) -> Path:
    config = {
        "sites": {SITE: {"asg": GROUP, "region": REGION}},
        "lifecycle": {
            "queue_url": queue_url, "region": REGION,
            "jenkins": {"url": jenkins_url, "job": JOB, "timeout_s": 10},
            "groups": {GROUP: SITE},
            "batch_window_s": BATCH_WINDOW_S, "batch_max_instances": BATCH_MAX_INSTANCES,
            "poll_interval_s": POLL_INTERVAL_S,
        },
    }
    path = workdir / "deploy.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def in_service(asg, instances: int) -> int:
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0]
    return sum(i["LifecycleState"] == "InService" for i in group["Instances"])


def queued_at(jenkins: JenkinsEmulator) -> tuple[int, dict[str, float]]:
    """How many builds ran, and when the first build naming each instance was queued (epoch s)."""
    auth = (JENKINS_USER, JENKINS_TOKEN)
    tree = "builds[number,queueId,actions[parameters[name,value]]]"
    builds = requests.get(f"{jenkins.url.rstrip('/')}/job/{JOB}/api/json", params={"tree": tree},
                          auth=auth, timeout=10).json()["builds"]
    queued: dict[str, float] = {}
    for build in sorted(builds, key=lambda b: b["queueId"]):
        item = requests.get(f"{jenkins.url.rstrip('/')}/queue/item/{build['queueId']}/api/json",
                            auth=auth, timeout=10).json()
        params = {p["name"]: p["value"] for a in build["actions"] for p in a.get("parameters", [])}
        for instance in filter(None, params.get("INSTANCE_IDS", "").split(",")):
            queued.setdefault(instance, item["inQueueSince"] / 1000)
    return len(builds), queued


def run(instances: int) -> int:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-lifecycle-")))
        url, tap, _ = start_moto(stack, workdir)
        jenkins = start_jenkins(stack)
        queue_url = seed(url, instances)
        log_path = workdir / "consumer.log"
        consumer = start_consumer(stack, write_config(workdir, queue_url, jenkins.url), url, log_path,
                                  JENKINS_USER, JENKINS_TOKEN)
        wait_for_log(log_path, "consumer_started", consumer)

        asg = fleet.client("autoscaling", url, REGION)
        asg.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=instances)
        deadline = time.monotonic() + GIVE_UP_S
        while (done := in_service(asg, instances)) < instances and time.monotonic() < deadline:
            if consumer.poll() is not None:
                break
            time.sleep(WATCH_INTERVAL_S)
        all_in_service_at = time.time()
        rss_mb = peak_rss_mb(consumer.pid) if consumer.poll() is None else math.nan
        stopping = time.monotonic()
        stop_process(consumer)
        stop_s = time.monotonic() - stopping

        notified = notifications(tap)
        first_notified = min(a.notified_at for a in notified.values()).timestamp()
        builds, queued = queued_at(jenkins)
        latencies = [queued[i] - a.notified_at.timestamp() for i, a in notified.items() if i in queued]
        log = log_path.read_text(encoding="utf-8")
        completed = log.count("event=action_completed")
        continued = log.count("result=CONTINUE build=")
        problems = [line for line in log.splitlines() if "level=warning" in line or "level=error" in line]

    print(f"lifecycle burst: {instances} launches, batch window {BATCH_WINDOW_S:g} s, "
          f"at most {BATCH_MAX_INSTANCES} per build, deploy job exits 0 at once")
    print(f"notifications {len(notified)}, in service {done}, completed {completed} (CONTINUE {continued}), "
          f"deployed {len(queued)}, consumer warnings/errors {len(problems)}, "
          f"consumer exit after SIGTERM {stop_s:.1f} s (status {consumer.returncode})")
    elapsed = all_in_service_at - first_notified
    report("first notification -> all InService (s)", elapsed, f"<= {TARGET_COMPLETE_S:g} s",
           done == instances and elapsed <= TARGET_COMPLETE_S)
    report("Jenkins builds", builds, f"<= {TARGET_BUILDS}", builds <= TARGET_BUILDS)
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    report("notification -> build queued p50 (s)", p50, "(info)", True)
    report("notification -> build queued p95 (s)", p95, f"<= {TARGET_P95_QUEUED_S:g} s",
           len(latencies) == instances and p95 <= TARGET_P95_QUEUED_S)
    report("notification -> build queued max (s)", max(latencies, default=math.nan), "(info)", True)
    report("consumer peak RSS (MB)", rss_mb, f"<= {TARGET_RSS_MB:g} MB", rss_mb <= TARGET_RSS_MB)
    for line in problems[:10]:
        print(f"  consumer: {line}")
    met = (done == instances and elapsed <= TARGET_COMPLETE_S and builds <= TARGET_BUILDS
           and len(latencies) == instances and p95 <= TARGET_P95_QUEUED_S and rss_mb <= TARGET_RSS_MB)
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200, help="launches in the one-group burst")
    parser.add_argument("--burst", action="store_true",
                        help="instead, 1,000 launches over 10 groups and 5 sites (bench/lifecycle_burst.py)")
    parser.add_argument("--keep-log", type=Path, help="with --burst: copy the consumer's log here")
    parser.add_argument("--aws-latency-ms", type=float, default=0.0,
                        help="with --burst: add this to every AWS call, as the round trip to a real region "
                             "(moto on loopback answers in a few ms)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="with --burst: also run N consumer replicas on the same queue and print each figure "
                             "as a ratio against one replica in the same run (bench/lifecycle_replicas.py)")
    parser.add_argument("--kill-after-s", type=float,
                        help="with --replicas: SIGKILL one replica this long after the first launch")
    args = parser.parse_args()
    byte_compile_ours()
    if args.burst and args.replicas > 1:
        from bench import lifecycle_replicas

        return lifecycle_replicas.run(args.replicas, args.kill_after_s, args.aws_latency_ms)
    if args.burst:
        from bench import lifecycle_burst

        return lifecycle_burst.run(args.keep_log, args.aws_latency_ms)
    return run(args.instances)


if __name__ == "__main__":
    sys.exit(main())
