"""Shared pieces of the benchmarks: a moto server in its own process that counts API
calls, and a runner that measures a client process's wall time and CPU time.

The server runs in a separate process so that the CPU time we charge to a client is
the client's own (os.wait4 on it), not moto's.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SERVER_SCRIPT = r"""
import io, json, sys, threading, urllib.parse
from collections import Counter
from werkzeug.serving import make_server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

calls = Counter()
lock = threading.Lock()
moto_app = DomainDispatcherApplication(create_backend_app)
replay_reads = sys.argv[2] == "replay"
replies = {}  # (method, path, query, body, region/service) -> (status, headers, body)
READS = ("Describe", "List", "Get")

def action_of(environ, body):
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    params = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    params.update(urllib.parse.parse_qs(environ.get("QUERY_STRING", "")))
    return params.get("Action", ["?"])[0]

def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/_bench/calls":
        with lock:
            payload = json.dumps(calls).encode()
            if environ["REQUEST_METHOD"] == "DELETE":
                calls.clear()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [payload]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    if path.startswith("/moto-api"):
        return moto_app(environ, start_response)
    action = action_of(environ, body)
    with lock:
        calls[action] += 1
        if not action.startswith(READS):
            replies.clear()  # a write may change any answer
    if not replay_reads or not action.startswith(READS):
        return moto_app(environ, start_response)
    # The same bytes moto gave the first time; the signature (which embeds the time) is left
    # out of the key, its scope (region and service) is not: two regions ask the same body.
    scope = environ.get("HTTP_AUTHORIZATION", "").partition("Credential=")[2].split(",")[0].split("/")[2:4]
    key = (environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""), body, tuple(scope))
    with lock:
        reply = replies.get(key)
    if reply is None:
        seen = {}
        def keep(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, headers
        payload = b"".join(moto_app(environ, keep))
        reply = (seen["status"], seen["headers"], payload)
        if seen["status"].startswith("200"):
            with lock:
                replies[key] = reply
    start_response(reply[0], reply[1])
    return [reply[2]]

import logging; logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True)
print("ready", flush=True)
server.serve_forever()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CountingMoto:
    """moto server in a child process, counting every AWS API call it answers.

    With `replay_reads`, a read call (Describe*, List*, Get*) asked again with the same
    parameters, region and service gets the bytes moto answered the first time, until any
    other call. moto spends seconds serialising every 1,000 instances (moto/core/serialize.py),
    which would make runs at 10,000 instances take minutes of server time each; the clients
    still receive, parse and pay for every byte, so their CPU and memory are unchanged.
    Only the first run of each client waits for moto."""

    def __init__(self, replay_reads: bool = False) -> None:
        self.replay_reads = replay_reads
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "CountingMoto":
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT, str(self.port), "replay" if self.replay_reads else "live"],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    def take_calls(self) -> dict[str, int]:
        """The calls answered since the last take, and forget them."""
        return requests.delete(f"{self.url}/_bench/calls", timeout=30).json()


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    calls: dict[str, int]
    peak_rss_mb: float = 0.0


# Linux keeps a process's peak RSS across fork and exec (ru_maxrss, VmHWM of the old mm), so a
# client spawned from this process, which holds the seeded fleet, would report this process's
# peak if it is larger than its own: the 10,000-instance figures read 202 MB where the client
# itself peaked far lower. A small fresh Python forks and times the client instead; its own
# ~10 MB is the floor every client's figure then starts from.
_LAUNCHER = """
import json, os, sys, time
result, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(result, "w") as out:
    json.dump({"wall_s": time.perf_counter() - start, "exit": os.waitstatus_to_exitcode(status),
               "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss}, out)
"""


def measure(argv: list[str], env: dict[str, str], server: CountingMoto, stdout_path: Path | None = None) -> Run:
    """Run a client to its end; its own wall, CPU (user+sys) and peak RSS, and the calls it made.
    Its output goes to `stdout_path` (else nowhere), for a check of what it listed.

    The launcher's os.wait4 reports the usage of exactly this child (and anything it waited
    for), where RUSAGE_CHILDREN's ru_maxrss would be the largest of every child ever."""
    server.take_calls()
    with tempfile.TemporaryFile() as errors, open(stdout_path or os.devnull, "wb") as out, \
            tempfile.NamedTemporaryFile(mode="r", suffix=".json") as result:
        subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, result.name, *argv], env=env,
                       stdout=out, stderr=errors, check=True)
        usage = json.load(result)
        if usage["exit"] != 0:
            errors.seek(0)
            text = errors.read().decode("utf-8", "replace")
            raise SystemExit(f"{argv[0]} failed ({usage['exit']}): {text.strip()[-2000:]}")
    return Run(usage["wall_s"], usage["cpu_s"], server.take_calls(), usage["maxrss_kb"] / 1024)


def byte_compile_ours() -> None:
    """Byte-compile the helper package, as pip does when it installs the wheel.

    Run from a checkout where PYTHONDONTWRITEBYTECODE is set (it is on this machine), every run
    of ours would compile our sources again: 30-40 ms of a 1,000-instance inventory that no
    installed copy pays, while the peers run from the bytecode pip wrote for them. compileall
    writes the files itself, whatever that variable says; imports then read them.
    """
    import compileall

    if not compileall.compile_dir(str(ROOT / "helper"), quiet=1):
        raise SystemExit("could not byte-compile the helper package")


def median(values: list[float]) -> float:
    return statistics.median(values)


def environment(endpoint_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint_url, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        **extra,
    )
    return env


def print_json(label: str, payload: dict) -> None:
    print(f"{label}: {json.dumps(payload, sort_keys=True)}")
