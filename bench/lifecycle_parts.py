"""Pieces both lifecycle benchmarks use: moto with the lifecycle hooks in a process of its
own that records every notification it delivers, the consumer as its own process, and the
figures read back from them (notification times, peak RSS, CPU, percentiles).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.harness import ROOT, environment, free_port
from helper.consumer.action import LifecycleAction, parse

STOP_TIMEOUT_S = 30.0
# The consumer's settings and Jenkins login in both benchmarks: one batch window, so their
# notification -> build queued figures compare.
JENKINS_USER, JENKINS_TOKEN = "bench", "bench-token"
BATCH_WINDOW_S, BATCH_MAX_INSTANCES = 3.0, 20
POLL_INTERVAL_S = 0.5


# moto with the lifecycle extensions, in a process of its own. The consumer deletes each
# notification once it is done, so the server also writes every body the hook delivers to
# a file: their `Time` fields are when each instance was notified.
MOTO_SCRIPT = r"""
import io, json, signal, sys, threading, time, urllib.parse
from collections import defaultdict
from helper.sandbox.aws import notify, scaling, server as sandbox_server
from helper.sandbox.aws.server import MotoServer

tap = open(sys.argv[2], "a", encoding="utf-8", buffering=1)
deliver = notify.deliver

def deliver_and_record(target_arn, body, *args, **kwargs):
    deliver(target_arn, body, *args, **kwargs)
    tap.write(json.dumps(body) + "\n")

notify.deliver = deliver_and_record

# When each lifecycle action was completed (and a CONTINUEd launch went InService), so the
# benchmark need not poll DescribeAutoScalingGroups, which costs moto far more than the
# consumer's own calls at 1,000 instances.
results = open(sys.argv[4], "a", encoding="utf-8", buffering=1)
apply_result = scaling.apply_result

def apply_and_record(action, result):
    apply_result(action, result)
    results.write(json.dumps({"instance": action.instance_id, "group": action.group_name,
                              "result": result, "at": time.time()}) + "\n")

scaling.apply_result = apply_and_record

# Each API action's count and seconds in moto, written to argv[3] at exit: where the server's
# time went when it is the bottleneck.
served = defaultdict(lambda: [0, 0.0])
served_lock = threading.Lock()
answer = sandbox_server.SandboxControlApp.__call__

def action_of(environ):
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    params = urllib.parse.parse_qs(body.decode("utf-8", "replace") + "&" + environ.get("QUERY_STRING", ""))
    return params.get("Action", ["?"])[0]

# Each AWS call waits this long before moto answers it (argv[5], seconds): the round trip to a
# real region, which moto on loopback does not have. The handler thread sleeps; nothing is locked.
latency_s = float(sys.argv[5])

def timed(self, environ, start_response):
    action, started = action_of(environ), time.perf_counter()
    if latency_s:
        time.sleep(latency_s)
    try:
        return list(answer(self, environ, start_response))
    finally:
        with served_lock:
            served[action][0] += 1
            served[action][1] += time.perf_counter() - started

sandbox_server.SandboxControlApp.__call__ = timed
import logging; logging.getLogger("werkzeug").setLevel(logging.ERROR)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
server = MotoServer(int(sys.argv[1]))
print(server.start(), flush=True)
stop.wait()
server.stop()
with served_lock, open(sys.argv[3], "w", encoding="utf-8") as out:
    json.dump(served, out)
"""


def start_moto(stack: contextlib.ExitStack, workdir: Path,
               latency_ms: float = 0.0) -> tuple[str, Path, subprocess.Popen]:
    """moto in its own process; `latency_ms`: added to every AWS call, as a region's round trip."""
    tap = workdir / "notifications.jsonl"
    argv = [sys.executable, "-c", MOTO_SCRIPT, str(free_port()), str(tap), str(served_path(workdir)),
            str(completions_path(workdir)), str(latency_ms / 1000)]
    process = subprocess.Popen(argv,
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    stack.callback(stop_process, process)
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        raise SystemExit(f"moto did not start (exit {process.poll()})")
    return url, tap, process


def completions_path(workdir: Path) -> Path:
    """Where moto writes one JSON line per completed lifecycle action: instance, group, result, at."""
    return workdir / "completions.jsonl"


def completions(workdir: Path) -> list[dict]:
    path = completions_path(workdir)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def served_path(workdir: Path) -> Path:
    """Where moto leaves {action: [count, seconds]} when it stops."""
    return workdir / "moto-served.json"


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()



def start_consumer(stack: contextlib.ExitStack, config: Path, url: str, log_path: Path,
                   jenkins_user: str, jenkins_token: str) -> subprocess.Popen:
    """`python -m helper -v consume`, as it runs in production, logging to `log_path`."""
    env = environment(url, JENKINS_USER=jenkins_user, JENKINS_API_TOKEN=jenkins_token)
    log = stack.enter_context(open(log_path, "w", encoding="utf-8"))
    process = subprocess.Popen([sys.executable, "-m", "helper", "-v", "consume", "-c", str(config)],
                               cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    stack.callback(stop_process, process)
    return process


def wait_for_log(log_path: Path, event: str, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while f"event={event}" not in log_path.read_text(encoding="utf-8"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"consumer did not log {event}:\n{log_path.read_text(encoding='utf-8')[-2000:]}")
        time.sleep(0.05)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return math.nan


def notifications(tap: Path) -> dict[str, LifecycleAction]:
    """Each instance's launch notification, as the hook sent it."""
    actions = {}
    for line in tap.read_text(encoding="utf-8").splitlines():
        parsed = parse(json.loads(line))
        if isinstance(parsed, LifecycleAction):
            actions.setdefault(parsed.instance_id, parsed)
    return actions


def accepted_at(log: str) -> dict[str, float]:
    """When (epoch s, to the second the log shows) the consumer accepted each instance's action."""
    accepted = {}
    for line in log.splitlines():
        if "event=action_accepted" in line:
            ts = datetime.strptime(line.split()[0][3:], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            instance = line.partition(" action=")[2].split(":")[1]
            accepted.setdefault(instance, ts.timestamp())
    return accepted


def cpu_s(pid: int) -> float:
    """User+sys CPU seconds of a running process so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else math.nan


def report(name: str, value: float, target: str, ok: bool, unit: str = "") -> None:
    print(f"{name:<48} {value:>9.2f}{unit:<3} target {target:<16} {'ok' if ok else 'SHORT'}")


