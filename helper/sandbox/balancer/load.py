"""Traffic through the sandbox's load balancer, and what it sees: a load of requests that counts the
ones that failed and the revision that answered each, and a sampler of how many hosts HAProxy
sends traffic to. Both run on threads until their `with` block ends."""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from dataclasses import dataclass, field

from helper.sandbox.balancer.members import Members

REQUEST_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.02


@dataclass
class Load:
    """Requests through the load balancer on `workers` threads, each on a new connection, until
    stopped: how many were made, which failed, and which revision answered each one."""

    port: int
    workers: int = 4
    pause_s: float = 0.005
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    revisions: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.workers)]

    def _one(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            body = response.read().decode().strip()
            failure = None if response.status == 200 else f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            body, failure = "", f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
        with self._lock:
            self.sent += 1
            if failure:
                self.failures.append(failure)
            else:
                self.revisions[body] += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._one()
            self._stop.wait(self.pause_s)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_S * 2)


class Sampler:
    """How many hosts HAProxy sends traffic to, sampled every POLL_INTERVAL_S while it runs."""

    def __init__(self, members: Members, key: str) -> None:
        self.members, self.key = members, key
        self.counts: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.counts.append(len(self.members.in_service(self.key)))
            self._stop.wait(POLL_INTERVAL_S)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(5)
