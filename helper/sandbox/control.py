"""`aws-deploy-helper sandbox up|down|status|serve`.

`serve` runs the emulators in the foreground; `up` starts `serve` as a detached process
and waits until it has written its state file, so the endpoints it prints are ready.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from helper.errors import HelperError
from helper.sandbox import fleet
from helper.sandbox.moto_server import SANDBOX_ENV, MotoServer

STATE_FILE = "state.json"
# Seeding the demo fleet takes about a second on a quiet machine; allow for a slow CI.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.05


def _state_path(state_dir: str) -> Path:
    return Path(state_dir).resolve() / STATE_FILE


def read_state(state_dir: str) -> dict | None:
    try:
        return json.loads(_state_path(state_dir).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def environment(state: dict) -> dict[str, str]:
    return {**SANDBOX_ENV, "AWS_ENDPOINT_URL": state["aws_endpoint"]}


def _print_state(state: dict) -> None:
    print(f"local AWS (moto): {state['aws_endpoint']}")
    print(f"demo config:      {state['config']}")
    print("export these to point boto3 and the helper at it:")
    for name, value in environment(state).items():
        print(f"export {name}={value}")


def serve(state_dir: str, port: int = 0, ready: threading.Event | None = None,
          stop: threading.Event | None = None) -> None:
    directory = Path(state_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signum, lambda *_: stop.set())
    moto = MotoServer(port=port)
    url = moto.start()
    try:
        demo = fleet.seed_demo(url)
        config = fleet.write_demo_config(demo, directory)
        state = {"pid": os.getpid(), "aws_endpoint": url, "config": str(config)}
        tmp = directory / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(directory / STATE_FILE)
        if ready is not None:
            ready.set()
        stop.wait()
    finally:
        (directory / STATE_FILE).unlink(missing_ok=True)
        moto.stop()


def up(state_dir: str, port: int = 0) -> dict:
    existing = read_state(state_dir)
    if existing and _alive(existing["pid"]):
        return existing
    directory = Path(state_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    _state_path(state_dir).unlink(missing_ok=True)
    log = open(directory / "sandbox.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "helper", "sandbox", "serve", "--state-dir", str(directory), "--port", str(port)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = read_state(state_dir)
        if state is not None:
            return state
        if process.poll() is not None:
            raise HelperError(f"sandbox exited with status {process.returncode}; see {directory / 'sandbox.log'}")
        time.sleep(POLL_INTERVAL_S)
    process.kill()
    raise HelperError(f"sandbox did not start within {START_TIMEOUT_S:.0f} s; see {directory / 'sandbox.log'}")


def down(state_dir: str) -> bool:
    state = read_state(state_dir)
    if state is None or not _alive(state["pid"]):
        _state_path(state_dir).unlink(missing_ok=True)
        return False
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
    if _alive(state["pid"]):
        os.kill(state["pid"], signal.SIGKILL)
    _state_path(state_dir).unlink(missing_ok=True)
    return True


def run(action: str, args) -> int:
    if action == "serve":
        serve(args.state_dir, args.port)
        return 0
    if action == "up":
        _print_state(up(args.state_dir, args.port))
        return 0
    if action == "down":
        print("sandbox stopped" if down(args.state_dir) else "sandbox was not running")
        return 0
    state = read_state(args.state_dir)
    if state is None or not _alive(state["pid"]):
        print("sandbox is not running")
        return 1
    _print_state(state)
    return 0
