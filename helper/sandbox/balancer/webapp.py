"""The app a sandbox test host serves: it says which revision it runs, and a deploy restarts it.

Standard library only, run by path (`python3 webapp.py ...`) inside a host's namespaces, where
the package may not be importable:

    webapp.py serve   --dir /srv/app --port 8080    # GET / -> the revision it started with
    webapp.py restart --dir /srv/app --port 8080 --revision v2

The revision is read once, at start, as a real app loads its code. `restart` stops the running
app (SIGTERM closes its socket and drops the connections it has, as a real restart does), writes
the new revision, starts it in a session of its own (so it outlives the SSH session that ran the
deploy) and returns once it accepts connections. GET /health answers 200 while it runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.01


def serve(app_dir: Path, port: int) -> None:
    revision = (app_dir / "REVISION").read_text().strip()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = b"ok\n" if self.path == "/health" else f"{revision}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass  # HAProxy checks ten times a second: the log would be nothing but that

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    (app_dir / "pid").write_text(f"{os.getpid()}\n")
    # SIGTERM: exit at once, connections and all (os._exit skips the threads' clean-up).
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


def alive(pid: int) -> bool:
    """Whether the process still runs. A zombie does not: the app it was has closed its socket,
    and the orphan waits for an init that may reap it only seconds later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def stop(app_dir: Path) -> None:
    try:
        pid = int((app_dir / "pid").read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(POLL_INTERVAL_S)
    os.kill(pid, signal.SIGKILL)


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def restart(app_dir: Path, port: int, revision: str) -> int:
    app_dir.mkdir(parents=True, exist_ok=True)
    stop(app_dir)
    (app_dir / "REVISION.new").write_text(f"{revision}\n")
    os.replace(app_dir / "REVISION.new", app_dir / "REVISION")
    with open(app_dir / "app.log", "ab") as log:
        subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve", "--dir", str(app_dir),
                          "--port", str(port)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not accepts(port):
        if time.monotonic() > deadline:
            print(f"webapp: not listening on port {port} after {START_TIMEOUT_S:g} s", file=sys.stderr)
            return 1
        time.sleep(POLL_INTERVAL_S)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="webapp.py")
    parser.add_argument("action", choices=["serve", "restart"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--revision")
    args = parser.parse_args(argv)
    if args.action == "serve":
        serve(args.dir, args.port)
        return 0
    if not args.revision:
        parser.error("restart needs --revision")
    return restart(args.dir, args.port, args.revision)


if __name__ == "__main__":
    sys.exit(main())
