"""What each load balancer's members are doing, told the way AWS tells it, from HAProxy's own checks.

A `Members` book sits between moto (which keeps the registrations) and HAProxy (which carries
the traffic). Registering a target puts its HAProxy server in `ready` at weight 0: HAProxy sends a
server leaving maintenance traffic at once, before any check, where ELB sends none to an `initial`
target; a ticker (and every health question) gives it its weight once its checks have passed
`rise` times since it was registered. Deregistering puts it in
`drain` (no new requests; those in flight finish) until the deregistration delay has passed or
its last session ended, as ELB completes a deregistration early when nothing is in flight, and
then in `maint`. Target health comes from HAProxy's checks:

    initial    registered, checks not yet passed `rise` times since (Elb.InitialHealthChecking)
    healthy    HAProxy says UP
    unhealthy  HAProxy says DOWN after the target was healthy, or after its first checks failed
    draining   deregistered, delay not over and sessions open (Target.DeregistrationInProgress)

The clock is injectable; every state change is under one lock (moto serves requests on threads).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from helper.sandbox.balancer.haproxy import CHECK_FALL, CHECK_INTERVAL_MS, CHECK_RISE, Haproxy, HaproxyError

log = logging.getLogger(__name__)

# A registration is `initial` at least as long as HAProxy takes to see `rise` good checks.
INITIAL_S = CHECK_RISE * CHECK_INTERVAL_MS / 1000
# ...and turns `unhealthy` if HAProxy has not seen it up within rise + fall checks and a margin.
FIRST_VERDICT_S = (CHECK_RISE + CHECK_FALL + 2) * CHECK_INTERVAL_MS / 1000

REASONS = {
    "initial": ("Elb.InitialHealthChecking", "Initial health checks in progress"),
    "unhealthy": ("Target.FailedHealthChecks", "Health checks failed"),
    "draining": ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
}


FULL_WEIGHT = 100
# HAProxy's view of a server changes at most once a check: one `show stat` serves every target a
# describe call asks about within half an interval (it was one round trip per target).
STATS_FRESH_S = CHECK_INTERVAL_MS / 2000
# How often the ticker looks for registered targets whose checks have passed, and for drains that
# are over (HAProxy's own pace).
TICK_S = CHECK_INTERVAL_MS / 1000


@dataclass
class Member:
    registered_at: float | None = None  # None: not registered (draining or out)
    drain_until: float | None = None  # None: not draining
    drain_started: float = 0.0
    healthy_seen: bool = False  # its checks passed since it was registered: it has its weight


class Members:
    """The members of the load balancers bound to HAProxy backends; a key names one load balancer."""

    def __init__(self, haproxy: Haproxy, clock: Callable[[], float] = time.monotonic) -> None:
        self.haproxy = haproxy
        self._clock = clock
        self._lock = threading.Lock()
        self._backends: dict[str, str] = {}  # load balancer key -> HAProxy backend
        self._servers: set[tuple[str, str]] = set()  # (backend, instance) added to HAProxy
        self._members: dict[tuple[str, str], Member] = {}  # (key, instance)
        self.transitions: list[tuple[str, str, str]] = []  # (key, instance, ready|drain|maint), in order
        self.drains_s: list[tuple[str, float]] = []  # (instance, seconds from deregister to out), in order
        self._stats_read: tuple[float, dict] | None = None  # (when, show stat), see _stats()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="members-ticker", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        self._ticker.join(5)

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                for key in list(self._backends):
                    self.settle(key)  # ELB ends a drain by itself, not when someone asks
                    for instance in [i for (k, i), m in list(self._members.items())
                                     if k == key and m.registered_at is not None and not m.healthy_seen]:
                        self.health(key, instance)
            except (OSError, HaproxyError) as exc:  # HAProxy stopping, or a refusal: say so, tick again
                log.warning("event=balancer_tick_failed error=%r", str(exc))

    def bind(self, key: str, backend: str) -> None:
        with self._lock:
            self._backends[key] = backend

    def bound(self, key: str) -> bool:
        return key in self._backends

    def backend(self, key: str) -> str:
        return self._backends[key]

    def _stats(self) -> dict:
        """HAProxy's `show stat`, read again when older than STATS_FRESH_S or after we changed a server."""
        now = self._clock()
        if self._stats_read is None or now - self._stats_read[0] >= STATS_FRESH_S:
            self._stats_read = (now, self.haproxy.stats())
        return self._stats_read[1]

    def _set(self, key: str, instance: str, state: str) -> None:
        self.haproxy.set_state(self._backends[key], instance, state)
        self._stats_read = None
        self.transitions.append((key, instance, state))

    def register(self, key: str, instance: str, address: str, port: int) -> None:
        with self._lock:
            backend = self._backends[key]
            if (backend, instance) not in self._servers:
                self.haproxy.add_server(backend, instance, address, port)
                self._servers.add((backend, instance))
            member = self._members.setdefault((key, instance), Member())
            if member.registered_at is None:  # registering a registered target changes nothing
                self.haproxy.set_weight(backend, instance, 0)
                self._set(key, instance, "ready")
                member.registered_at, member.drain_until, member.healthy_seen = self._clock(), None, False

    def deregister(self, key: str, instance: str, delay_s: float) -> bool:
        """Start draining; False when the instance was not registered (AWS accepts that, and so do we)."""
        with self._lock:
            member = self._members.get((key, instance))
            if member is None or member.registered_at is None:
                return False
            self._set(key, instance, "drain")
            member.registered_at, member.drain_until = None, self._clock() + max(0.0, delay_s)
            member.drain_started = self._clock()
            return True

    def settle(self, key: str) -> list[str]:
        """Finish the drains that are over (delay passed, or no session left): the instances now out."""
        with self._lock:
            draining = [i for (k, i), m in self._members.items() if k == key and m.drain_until is not None]
            if not draining:
                return []
            stats, now, backend, done = self._stats(), self._clock(), self._backends[key], []
            for instance in draining:
                member = self._members[(key, instance)]
                stat = stats.get((backend, instance))
                if now >= member.drain_until or stat is None or stat.sessions == 0:
                    self._set(key, instance, "maint")
                    member.drain_until = None
                    self.drains_s.append((instance, now - member.drain_started))
                    done.append(instance)
            return done

    def finished(self, key: str) -> list[str]:
        """The instances whose drain is over (deregistered, out): the ticker may have ended it."""
        with self._lock:
            return [i for (k, i), m in self._members.items()
                    if k == key and m.registered_at is None and m.drain_until is None]

    def health(self, key: str, instance: str) -> str:
        """initial, healthy, unhealthy, draining, or unused (not registered)."""
        with self._lock:
            member = self._members.get((key, instance))
            if member is None:
                return "unused"
            if member.drain_until is not None:
                return "draining"
            if member.registered_at is None:
                return "unused"
            stat = self._stats().get((self._backends[key], instance))
            age_s = self._clock() - member.registered_at
            passing = stat is not None and stat.up and stat.check.startswith("L7OK")
            if member.healthy_seen and stat is not None and stat.up:
                return "healthy"
            if passing and age_s >= INITIAL_S:
                self.haproxy.set_weight(self._backends[key], instance, FULL_WEIGHT)
                self._stats_read = None
                member.healthy_seen = True
                return "healthy"
            if member.healthy_seen or age_s >= FIRST_VERDICT_S:
                return "unhealthy"
            return "initial"

    def in_service(self, key: str) -> list[str]:
        """The instances HAProxy sends traffic to now: registered and up."""
        with self._lock:
            stats = self._stats()
            backend = self._backends[key]
            return sorted(i for (k, i), m in self._members.items()
                          if k == key and m.registered_at is not None and m.healthy_seen
                          and (s := stats.get((backend, i))) is not None and s.up)
