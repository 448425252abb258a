"""Benchmark (not a test): a burst of 1,000 launches over 10 groups and 5 sites.

Two Auto Scaling groups per site, 100 launches each, sent one group after another in steps
of LAUNCH_STEP (SetDesiredCapacity), into one hook queue. Each site has a Jenkins job of its own
whose build takes BUILD_S seconds, and each job runs one build at a time (as a job without
concurrent builds does on Jenkins; the emulator has one executor per job). moto with the
lifecycle hooks runs in its own process, the Jenkins emulator in this one, the consumer as
its own process. moto records each completion as it applies it, and we print, once every
instance is InService:

- per group: seconds from its first notification to all its instances InService, minus the
  run time of the builds that deployed them (they run one after another on the site's one
  executor, so no consumer could do better than their sum); target <= 60 s;
- Jenkins builds, target <= 60 (1,000 launches in batches of at most 20 need 50);
- p95 seconds from notification to the queueing of the build that deploys the instance,
  target <= batch window + 1 s;
- the consumer's peak RSS (VmHWM), target <= 100 MB, and its CPU per lifecycle action.

    .venv/bin/python bench/lifecycle.py --burst
    .venv/bin/python bench/lifecycle.py --burst --aws-latency-ms 40   # with a region's round trip
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import requests
import yaml

from bench.lifecycle_parts import (
    BATCH_MAX_INSTANCES,
    BATCH_WINDOW_S,
    JENKINS_TOKEN,
    JENKINS_USER,
    POLL_INTERVAL_S,
    accepted_at,
    completions,
    cpu_s,
    notifications,
    peak_rss_mb,
    percentile,
    report,
    served_path,
    start_consumer,
    start_moto,
    stop_process,
    wait_for_log,
)
from helper.consumer.jenkins_client import BUILD_PARAMETERS
from helper.sandbox.aws import fleet
from helper.sandbox.jenkins.emulator import JenkinsEmulator

REGION = "us-east-1"
SITES = 5
GROUPS_PER_SITE = 2
LAUNCHES_PER_GROUP = 100
# "A few seconds per build": a deploy that does nothing but wait, so the consumer's own
# overhead is what the figures show.
BUILD_S = 3.0
# Each group scales out in steps of this many. The sandbox launches a step while holding the
# one lock every lifecycle call takes (helper/sandbox/aws/lifecycle.py), at ~8 ms per instance
# in moto: one SetDesiredCapacity of 100 would stall every heartbeat and completion for
# ~1 s (several under load), ten in a row for ten times that, a stall AWS does not have.
LAUNCH_STEP = 10
# Long enough that no action times out while its site's builds queue one after another, so
# a slow run shows as a missed target rather than as ABANDONed instances.
HEARTBEAT_TIMEOUT_S = 600
# How often we read moto's completion record to see whether we are done; the completion times
# themselves are moto's own stamps, so this only bounds how long we linger after the last.
WATCH_INTERVAL_S = 0.5
GIVE_UP_S = 400.0

TARGET_GROUP_S = 60.0
TARGET_BUILDS = 60
TARGET_P95_QUEUED_S = BATCH_WINDOW_S + 1.0
TARGET_RSS_MB = 100.0


def site_name(s: int) -> str:
    return f"site{s}"


def group_name(s: int, g: int) -> str:
    return f"site{s}-asg{g}"


def job_name(s: int) -> str:
    return f"deploy-site{s}"


GROUPS = {group_name(s, g): s for s in range(SITES) for g in range(GROUPS_PER_SITE)}


def start_jenkins(stack: contextlib.ExitStack) -> JenkinsEmulator:
    jenkins = JenkinsEmulator(users={}, api_tokens={JENKINS_USER: JENKINS_TOKEN}, executors=SITES)
    jenkins.start()
    stack.callback(jenkins.stop)
    for s in range(SITES):
        jenkins.add_job(job_name(s), [{"name": p, "default": ""} for p in BUILD_PARAMETERS],
                        command=f"sleep {BUILD_S:g}", concurrent=False)
    return jenkins


def seed(url: str) -> str:
    """Ten empty groups, one hook queue with a DLQ, a launching hook per group; returns the queue URL."""
    queue_url, queue_arn, _ = fleet.lifecycle_queue(url, REGION, "bench-burst-hooks")
    asg = fleet.client("autoscaling", url, REGION)
    for group in GROUPS:
        fleet.auto_scaling_site(url, REGION, group, 0)
        asg.update_auto_scaling_group(AutoScalingGroupName=group, MaxSize=LAUNCHES_PER_GROUP)
        fleet.launch_hook(url, REGION, group, queue_arn, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S)
    return queue_url


def write_config(workdir: Path, queue_url: str, jenkins_url: str) -> Path:
    config = {
        # A site names one of its groups as its source; the lifecycle routes both groups to it.
        "sites": {site_name(s): {"asg": group_name(s, 0), "region": REGION} for s in range(SITES)},
        "lifecycle": {
            "queue_url": queue_url, "region": REGION,
            "jenkins": {"url": jenkins_url, "job": job_name(0), "timeout_s": 10},
            "groups": {group: {"site": site_name(s), "job": job_name(s)} for group, s in GROUPS.items()},
            "batch_window_s": BATCH_WINDOW_S, "batch_max_instances": BATCH_MAX_INSTANCES,
            "poll_interval_s": POLL_INTERVAL_S,
        },
    }
    path = workdir / "deploy.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def watch(workdir: Path, consumer) -> dict[str, float]:
    """When (epoch s, as moto stamped it) each group had all its launches completed with CONTINUE,
    i.e. InService; groups that never did are absent. Reads moto's completion record instead of
    asking Auto Scaling, so the watching costs the server nothing."""
    deadline = time.monotonic() + GIVE_UP_S
    done_at: dict[str, float] = {}
    while time.monotonic() < deadline and consumer.poll() is None:
        by_group: dict[str, list[float]] = {}
        for record in completions(workdir):
            if record["result"] == "CONTINUE":
                by_group.setdefault(record["group"], []).append(record["at"])
        done_at = {g: max(times) for g, times in by_group.items() if len(times) >= LAUNCHES_PER_GROUP}
        if len(done_at) == len(GROUPS):
            break
        time.sleep(WATCH_INTERVAL_S)
    return done_at


def builds(jenkins: JenkinsEmulator) -> list[dict]:
    """Every build of every site job: its job, instances, queue time, start and duration (s)."""
    auth = (JENKINS_USER, JENKINS_TOKEN)
    base = jenkins.url.rstrip("/")
    tree = "builds[number,queueId,timestamp,duration,actions[parameters[name,value]]]"
    found = []
    for s in range(SITES):
        reply = requests.get(f"{base}/job/{job_name(s)}/api/json", params={"tree": tree}, auth=auth, timeout=10)
        for build in reply.json()["builds"]:
            item = requests.get(f"{base}/queue/item/{build['queueId']}/api/json", auth=auth, timeout=10).json()
            params = {p["name"]: p["value"] for a in build["actions"] for p in a.get("parameters", [])}
            instances = set(filter(None, params.get("INSTANCE_IDS", "").split(",")))
            found.append({"job": job_name(s), "instances": instances,
                          "queued_s": item["inQueueSince"] / 1000, "duration_s": build["duration"] / 1000})
    return found


def run(keep_log: Path | None = None, latency_ms: float = 0.0) -> int:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-burst-")))
        url, tap, moto = start_moto(stack, workdir, latency_ms)
        jenkins = start_jenkins(stack)
        queue_url = seed(url)
        log_path = workdir / "consumer.log"
        consumer = start_consumer(stack, write_config(workdir, queue_url, jenkins.url), url, log_path,
                                  JENKINS_USER, JENKINS_TOKEN)
        wait_for_log(log_path, "consumer_started", consumer)

        asg = fleet.client("autoscaling", url, REGION)
        for group in GROUPS:
            for capacity in range(LAUNCH_STEP, LAUNCHES_PER_GROUP + 1, LAUNCH_STEP):
                asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=capacity)
        done_at = watch(workdir, consumer)
        alive = consumer.poll() is None
        rss_mb = peak_rss_mb(consumer.pid) if alive else math.nan
        consumer_cpu_s = cpu_s(consumer.pid) if alive else math.nan
        moto_cpu_s = cpu_s(moto.pid)
        stop_process(consumer)

        notified = notifications(tap)
        ran = builds(jenkins)
        stop_process(moto)
        served = json.loads(served_path(workdir).read_text()) if served_path(workdir).exists() else {}
        log = log_path.read_text(encoding="utf-8")
        if keep_log is not None:
            shutil.copyfile(log_path, keep_log)
    completed = log.count("event=action_completed")
    problems = [line for line in log.splitlines() if "level=warning" in line or "level=error" in line]
    queued: dict[str, float] = {}
    for build in sorted(ran, key=lambda b: b["queued_s"]):
        for instance in build["instances"]:
            queued.setdefault(instance, build["queued_s"])
    latencies = [queued[i] - a.notified_at.timestamp() for i, a in notified.items() if i in queued]
    launches = len(GROUPS) * LAUNCHES_PER_GROUP

    print(f"lifecycle burst: {launches} launches over {len(GROUPS)} groups and {SITES} sites, batch window "
          f"{BATCH_WINDOW_S:g} s, at most {BATCH_MAX_INSTANCES} per build, each build {BUILD_S:g} s, "
          f"one executor per site job, {latency_ms:g} ms added to each AWS call")
    print(f"notifications {len(notified)}, groups all InService {len(done_at)}/{len(GROUPS)}, completed "
          f"{completed}, deployed {len(queued)}, consumer warnings/errors {len(problems)}")
    met = len(done_at) == len(GROUPS)
    print(f"{'group':<12} {'first notified -> all InService s':>34} {'its builds ran s':>17} {'difference s':>13}")
    overheads = []
    for group in GROUPS:
        mine = {i for i, a in notified.items() if a.group == group}
        first = min((notified[i].notified_at.timestamp() for i in mine), default=math.nan)
        build_s = sum(b["duration_s"] for b in ran if b["instances"] & mine)
        elapsed = done_at.get(group, math.nan) - first
        # A group that never finished counts as infinitely late, never as quick.
        overheads.append(math.inf if math.isnan(elapsed) else elapsed - build_s)
        print(f"{group:<12} {elapsed:>34.2f} {build_s:>17.2f} {elapsed - build_s:>13.2f}")
    worst = max(overheads)
    report("worst group: to InService minus its builds (s)", worst, f"<= {TARGET_GROUP_S:g} s",
           met and worst <= TARGET_GROUP_S)
    report("Jenkins builds", len(ran), f"<= {TARGET_BUILDS}", len(ran) <= TARGET_BUILDS)
    p95 = percentile(latencies, 95)
    report("notification -> build queued p50 (s)", percentile(latencies, 50), "(info)", True)
    report("notification -> build queued p95 (s)", p95, f"<= {TARGET_P95_QUEUED_S:g} s",
           len(latencies) == launches and p95 <= TARGET_P95_QUEUED_S)
    report("notification -> build queued max (s)", max(latencies, default=math.nan), "(info)", True)
    report("consumer peak RSS (MB)", rss_mb, f"<= {TARGET_RSS_MB:g} MB", rss_mb <= TARGET_RSS_MB)
    report("consumer CPU per lifecycle action (ms)", 1000 * consumer_cpu_s / max(completed, 1), "(info)", True)
    # Where the notification -> queued time goes: waiting to be received, or checks before queueing.
    accepted = accepted_at(log)
    waited = [accepted[i] - a.notified_at.timestamp() for i, a in notified.items() if i in accepted]
    checked = [queued[i] - accepted[i] for i in accepted if i in queued]
    report("  of which notification -> accepted p95 (s)", percentile(waited, 95), "(info, +-1 s)", True)
    report("  of which accepted -> build queued p95 (s)", percentile(checked, 95), "(info, +-1 s)", True)
    report("moto CPU during the run (s)", moto_cpu_s, "(info)", True)
    print("moto's busiest actions (calls, seconds in moto, ms per call):")
    for action, (count, seconds) in sorted(served.items(), key=lambda kv: -kv[1][1])[:8]:
        print(f"  {action:<36} {count:>6} {seconds:>8.2f} {1000 * seconds / count:>8.1f}")
    for line in problems[:3]:
        print(f"  consumer: {line}")
    met = (met and worst <= TARGET_GROUP_S and len(ran) <= TARGET_BUILDS and len(latencies) == launches
           and p95 <= TARGET_P95_QUEUED_S and rss_mb <= TARGET_RSS_MB)
    return 0 if met else 1
