"""Debian's HAProxy as the sandbox's load balancer: one process, one frontend and backend per load balancer.

Each target group or classic ELB the sandbox balances is an HAProxy backend with a frontend on
127.0.0.1; its servers are added at run time (`add server`, so a new instance needs no reload)
and start in maintenance, which is "not registered". Everything after start goes through the
runtime API on a unix socket in the workdir (or, when that path is too long for a unix socket, in a
private directory of its own under $TMPDIR): `set server B/S state ready|drain|maint` and
`show stat`. HAProxy keeps health-checking a server in maintenance, so the moment a host is
put back its state already says whether its app answers.

HAProxy answers a request it cannot deliver with a 503 and retries nothing (`retries 0`), as an
ALB answers 502/503 without trying another target: a test sees every request a deploy broke.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from helper.sandbox import children

HAPROXY = "/usr/sbin/haproxy"
# HAProxy's checks run on the real clock, faster than any AWS health check: AWS allows 5 s at the
# least, and a test waits for rise x interval at every batch. The AWS settings bound our waits.
CHECK_INTERVAL_MS = 100
CHECK_RISE = 2
CHECK_FALL = 2
HEALTH_PATH = "/health"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.02
SOCKET_TIMEOUT_S = 5.0
ACCEPTED = ("", "New server registered.")  # what a command that worked prints
# HAProxy refuses a longer stats socket path ("too long (max 97)" in 2.6: the kernel's 108-byte
# sun_path, less the suffix of the temporary name it binds first). A state directory under a
# deep path (pytest's own under xdist is one) reached it, and `sandbox up --hosts` failed with
# "Fatal errors found in configuration".
MAX_SOCKET_PATH_BYTES = 97


class HaproxyError(RuntimeError):
    """HAProxy could not start, or refused a runtime command; the message says which and why."""


def available() -> str | None:
    """Why HAProxy cannot run here (for pytest.skip), or None."""
    if not os.access(HAPROXY, os.X_OK):
        return f"{HAPROXY} is missing: apt-get install haproxy"
    return None


@dataclass(frozen=True)
class ServerStat:
    """One server's line of `show stat`: HAProxy's status (UP, DOWN, MAINT, DRAIN, "UP 1/2"...),
    its open sessions, and the last check's result (L7OK, L4CON...)."""

    status: str
    sessions: int
    check: str

    @property
    def up(self) -> bool:
        return self.status.startswith("UP") or self.status == "DRAIN"


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on now (HAProxy cannot bind port 0 and report it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def config_text(socket_path: Path, frontends: dict[str, int]) -> str:
    lines = [
        "global",
        f"  stats socket {socket_path} mode 600 level admin",
        "defaults",
        "  mode http",
        "  timeout connect 1s",
        "  timeout client 30s",
        "  timeout server 30s",
        # Without it a check times out after `inter` (100 ms): on a loaded runner healthy apps
        # failed their checks and went DOWN (a full-suite flake); a real ELB check waits 5 s.
        "  timeout check 2s",
        "  retries 0",
    ]
    for backend, port in sorted(frontends.items()):
        lines += [f"frontend fe_{backend}", f"  bind 127.0.0.1:{port}", f"  default_backend {backend}",
                  f"backend {backend}", "  balance roundrobin", f"  option httpchk GET {HEALTH_PATH}"]
    return "\n".join(lines) + "\n"


class Haproxy:
    """One HAProxy process; `backends` names each backend, `port(backend)` is its frontend's port."""

    def __init__(self, workdir: Path, backends: list[str]) -> None:
        self.workdir = workdir
        self.socket_path = workdir / "admin.sock"
        self._socket_dir: Path | None = None  # made for the socket when the workdir's path is too long
        self.config_path = workdir / "haproxy.cfg"
        self.log_path = workdir / "haproxy.log"
        self.ports = {backend: free_port() for backend in backends}
        self._process: subprocess.Popen | None = None

    def port(self, backend: str) -> int:
        return self.ports[backend]

    @property
    def pid(self) -> int | None:
        """The running HAProxy's process id (None before start and after stop)."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.socket_path = self.workdir / "admin.sock"  # again: a stop() removed the short one
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH_BYTES:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="adh-haproxy-"))  # 0700, ours
            self.socket_path = self._socket_dir / "admin.sock"
        self.config_path.write_text(config_text(self.socket_path, self.ports), encoding="utf-8")
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config_path)],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise HaproxyError(f"haproxy exited with {self._process.returncode}: {self._log_tail()}")
            try:
                self.command("show info")
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise HaproxyError(f"haproxy's runtime API did not answer in {START_TIMEOUT_S:g} s") from None
                time.sleep(POLL_INTERVAL_S)

    def stop(self) -> None:
        if self._process is not None:
            children.end(self._process, STOP_TIMEOUT_S)
            self._process = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def __enter__(self) -> Haproxy:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def command(self, text: str) -> str:
        """One runtime API command; its answer. A command that changes something answers nothing
        (or a known line) when it worked: anything else it prints is a refusal, raised."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(SOCKET_TIMEOUT_S)
            sock.connect(str(self.socket_path))
            sock.sendall(text.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        answer = b"".join(chunks).decode()
        first = answer.strip().splitlines()[0] if answer.strip() else ""
        if not text.startswith("show ") and first not in ACCEPTED:
            raise HaproxyError(f"haproxy refused `{text}`: {first}")
        return answer

    def add_server(self, backend: str, server: str, address: str, port: int) -> None:
        """A new server, in maintenance (not registered) and health-checked from now on."""
        self.command(f"add server {backend}/{server} {address}:{port} check inter {CHECK_INTERVAL_MS}ms "
                     f"fastinter {CHECK_INTERVAL_MS}ms downinter {CHECK_INTERVAL_MS}ms "
                     f"rise {CHECK_RISE} fall {CHECK_FALL}")
        self.command(f"enable health {backend}/{server}")

    def set_state(self, backend: str, server: str, state: str) -> None:
        """ready (takes traffic), drain (finishes what it has, takes nothing new) or maint (out)."""
        self.command(f"set server {backend}/{server} state {state}")

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        """0: the server takes no new requests, whatever its checks say (a target still `initial`)."""
        self.command(f"set weight {backend}/{server} {weight}")

    def stats(self) -> dict[tuple[str, str], ServerStat]:
        """(backend, server) -> its state now, for every server of every backend."""
        text = self.command("show stat").lstrip("# ")
        found = {}
        for row in csv.DictReader(text.splitlines()):
            if row.get("svname") in (None, "FRONTEND", "BACKEND"):
                continue
            found[(row["pxname"], row["svname"])] = ServerStat(
                row.get("status", ""), int(row.get("scur") or 0), row.get("check_status", ""))
        return found

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace").strip().splitlines()[-1]
        except (OSError, IndexError):
            return "(no log)"
