"""The consumer's side of the per-site breaker: read it, feed it build results, tell a person.

helper/breaker/state.py holds the rules (pure transitions, the tag store); this module is
where the consumer meets them. Every read applies the one closing rule a read can see (a full
deploy recorded another revision); every scale-up build result is counted under a lock, so
the deployments of one replica never lose each other's counts (two replicas can: the last
write wins, and at worst one failure is counted once instead of twice). Each transition sends
its alert here, once, from the replica that wrote it.

A tag that cannot be read leaves the site with the last state this replica saw (CLOSED if
none): an Auto Scaling outage must neither open a breaker nor let a bad revision loop.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Callable

from prometheus_client import Counter, Gauge

from helper.breaker import alerts as texts
from helper.breaker.alerts import Alerts, AlertTargets, counters_on
from helper.breaker.state import (
    CLOSED,
    BreakerState,
    BreakerStore,
    BreakerStoreError,
    Event,
    close_if_revision_changed,
    on_result,
)
from helper.config.lifecycle import LifecycleConfig
from helper.deploys import revision
from helper.errors import HelperError

log = logging.getLogger(__name__)

# The build results that say something about the revision. ABORTED, NOT_BUILT, CANCELLED and
# UNREACHABLE say something about Jenkins or a person: a Jenkins outage must not open a breaker.
COUNTED_RESULTS = {"SUCCESS": True, "FAILURE": False, "UNSTABLE": False}
# On shutdown, queued alerts get this long to go out (inside the consumer's 30 s stop budget).
ALERTS_CLOSE_S = 10.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class BreakerMetrics:
    """Labels are site names from the config and fixed words: bounded."""

    def __init__(self, registry, sites: list[str]) -> None:
        r = registry
        self.open = Gauge("adh_breaker_open", "1 while the site's breaker is open", ["site"], registry=r)
        self.failures = Gauge("adh_breaker_failures", "Consecutive failed scale-up deploys counted", ["site"],
                              registry=r)
        self.opened = Counter("adh_breaker_opened", "Times a site's breaker opened", ["site"], registry=r)
        self.held = Gauge("adh_actions_held", "Launching actions held by an open breaker", ["site"], registry=r)
        self.hold_timeouts = Counter("adh_hold_timeouts", "Held actions completed with the hook's default result "
                                     "near its global timeout", ["result"], registry=r)
        self.store_errors = Counter("adh_breaker_store_errors", "Breaker tag reads or writes that failed",
                                    ["operation"], registry=r)
        for site in sites:  # shown at 0 from the start
            self.open.labels(site), self.failures.labels(site), self.opened.labels(site), self.held.labels(site)

    def show(self, site: str, state: BreakerState) -> None:
        self.open.labels(site).set(1 if state.is_open else 0)
        self.failures.labels(site).set(state.failures)


class SiteBreakers:
    def __init__(self, config: LifecycleConfig, store: BreakerStore, alerts: Alerts, metrics: BreakerMetrics,
                 revision_dir: str | None = None, wall: Callable[[], datetime] = utc_now,
                 config_path: str = "deploy.yml") -> None:
        self.config = config
        self.config_path = config_path  # for the reset command an alert suggests, so it pastes and runs
        self.store = store
        self.alerts = alerts
        self.metrics = metrics
        self.revision_dir = revision_dir
        self.wall = wall
        self._known: dict[str, BreakerState] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_clients(cls, config: LifecycleConfig, autoscaling_client, registry, revision_dir: str | None,
                     sns_client=None, config_path: str = "deploy.yml") -> "SiteBreakers":
        targets = AlertTargets(config.alerts.sns_topic_arn, config.alerts.webhook_url)
        sites = list(config.routed_sites)
        return cls(config, BreakerStore(autoscaling_client),
                   Alerts(targets, sns=sns_client if targets.sns_topic_arn else None, counters=counters_on(registry)),
                   BreakerMetrics(registry, sites), revision_dir, config_path=config_path)

    @property
    def sites(self) -> list[str]:
        return list(self.config.routed_sites)

    def groups_of(self, site: str) -> list[str]:
        return list(self.config.groups_of(site))

    # --- reading -----------------------------------------------------------------------------

    def recorded_revision(self, site: str) -> str | None:
        """The site's recorded revision, None when the consumer cannot see one (no path.revision_dir)."""
        if not self.revision_dir:
            return None
        try:
            return revision.read(self.revision_dir, site)
        except HelperError as exc:  # a broken record must not stop the consumer
            log.warning("event=revision_unreadable site=%s error=%r", site, str(exc))
            return None

    def _read(self, site: str) -> BreakerState:
        try:
            state = self.store.read(site, self.groups_of(site))
        except BreakerStoreError as exc:
            self.metrics.store_errors.labels("read").inc()
            log.warning("event=breaker_read_failed site=%s error=%r", site, str(exc))
            return self._known.get(site, CLOSED)
        return state

    def _write(self, site: str, state: BreakerState) -> bool:
        try:
            self.store.write(site, self.groups_of(site), state)
            return True
        except BreakerStoreError as exc:
            self.metrics.store_errors.labels("write").inc()
            log.warning("event=breaker_write_failed site=%s error=%r", site, str(exc))
            return False

    def state(self, site: str, held: int = 0) -> BreakerState:
        """The site's breaker now, closed first if a full deploy recorded another revision."""
        with self._lock:
            state = self._read(site)
            if state.is_open or state.failures:
                closed, event = close_if_revision_changed(state, self.recorded_revision(site), self.wall())
                if closed != state and self._write(site, closed):
                    state = closed
                    if event is Event.CLOSED:
                        log.info("event=breaker_closed site=%s reason=%r", site, state.reason)
                        self.alerts.send(texts.breaker_closed(site, state.reason, held))
            seen_before = self._known.get(site)
            self._known[site] = state
            if seen_before is not None and seen_before.is_open and not state.is_open:
                log.info("event=breaker_seen_closed site=%s reason=%r", site, state.reason)
            self.metrics.show(site, state)
            return state

    # --- build results -------------------------------------------------------------------------

    def record(self, site: str, result: str, build_url: str | None, deployed: str | None) -> BreakerState | None:
        """Count a finished scale-up build of the site against the revision it deployed; None when its
        result says nothing of a revision, or nobody knows which it deployed (`deployed` None).

        `deployed` is the site's recorded revision when the build started ("" when none was
        recorded): a scale-up build installs that one. The revision recorded when the result
        arrives may be a full deploy's newer one, which this build never ran (issue 19 item 12).
        """
        succeeded = COUNTED_RESULTS.get(result)
        if succeeded is None or deployed is None:
            return None
        with self._lock:
            before = self._read(site)
            state, event = on_result(before, deployed, succeeded, self.config.breaker.failures,
                                     detail=f"{result} {build_url or ''}".strip(), now=self.wall())
            if state != before:
                self._write(site, state)
            self._known[site] = state
            self.metrics.show(site, state)
        if event is Event.OPENED:
            self.metrics.opened.labels(site).inc()
            log.warning("event=breaker_opened site=%s revision=%s failures=%d", site, state.revision, state.failures)
            self.alerts.send(texts.breaker_opened(site, state.revision, state.failures, state.reason,
                                                  self.config_path))
        elif event is Event.CLOSED:
            log.info("event=breaker_closed site=%s reason=%r", site, state.reason)
            self.alerts.send(texts.breaker_closed(site, state.reason))
        return state

    # --- alerts the deployments send --------------------------------------------------------------

    def abandoned(self, site: str, group: str, instance: str, result: str, build_url: str | None) -> None:
        self.alerts.send(texts.abandoned(site, group, instance, result, build_url))

    def close(self, timeout_s: float = ALERTS_CLOSE_S) -> None:
        self.alerts.close(timeout_s)
