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
from pathlib import Path

from bench.harness import ROOT, environment, free_port
from helper.lifecycle.action import LifecycleAction, parse

STOP_TIMEOUT_S = 30.0


# moto with the lifecycle extensions, in a process of its own. The consumer deletes each
# notification once it is done, so the server also writes every body the hook delivers to
# a file: their `Time` fields are when each instance was notified.
MOTO_SCRIPT = r"""
import json, signal, sys, threading
from helper.sandbox.aws import notify
from helper.sandbox.aws.server import MotoServer

tap = open(sys.argv[2], "a", encoding="utf-8", buffering=1)
deliver = notify.deliver

def deliver_and_record(target_arn, body, *args, **kwargs):
    deliver(target_arn, body, *args, **kwargs)
    tap.write(json.dumps(body) + "\n")

notify.deliver = deliver_and_record
import logging; logging.getLogger("werkzeug").setLevel(logging.ERROR)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
server = MotoServer(int(sys.argv[1]))
print(server.start(), flush=True)
stop.wait()
server.stop()
"""


def start_moto(stack: contextlib.ExitStack, workdir: Path) -> tuple[str, Path]:
    tap = workdir / "notifications.jsonl"
    process = subprocess.Popen([sys.executable, "-c", MOTO_SCRIPT, str(free_port()), str(tap)],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    stack.callback(stop_process, process)
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        raise SystemExit(f"moto did not start (exit {process.poll()})")
    return url, tap


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


