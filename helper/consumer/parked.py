"""Launches an open breaker parks in Pending:Wait, until it closes or time runs out.

"Park" is the breaker's word, "hold" the fleet hold's (helper/deploys/fleet_hold.py): a parked
launch waits for its site's breaker; a held fleet keeps its hosts during a full deploy. The
metric names (adh_actions_held, adh_hold_timeouts) and the alert texts keep their first words,
which dashboards and runbooks already match on.

A deployment that finds its site's breaker open hands its actions here (plan.Parked) instead of
queueing a build. The consumer's loop tends them each round: heartbeat each before its hook
times out, keep its messages invisible, and ask the breaker again every `recheck_s`. When the
breaker has closed, every action held for a (site, job) goes into one plan, one build. An
action that nears its hook's global timeout is alerted once; at `global timeout - margin` it
is completed with the hook's DefaultResult, by us, counted and logged.

An action's start never comes from message text: a copy of a genuine notification with a past
`Time` made a held action take its default result at once (issue 19 item 3). It is the latest
of when this consumer first saw the action and SQS's SentTimestamp of its messages. Later than
the real start means our give-up can come after AWS's own global timeout, which then applies
the same default result: late, never early.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from helper.aws.hook_timeouts import global_timeout_s
from helper.aws.results import Result
from helper.breaker import alerts as texts
from helper.breaker.sites import SiteBreakers
from helper.breaker.state import Park, effective_margin_s, park_decision_for_hook, seconds_left
from helper.consumer.claims import Claims
from helper.consumer.context import Context
from helper.consumer.inflight import Tracked
from helper.consumer.plan import Plan

log = logging.getLogger(__name__)

# Ask the breaker's tags again this often while actions are held: a closed breaker deploys
# them within this long, for one DescribeTags call per site.
RECHECK_S = 15.0


@dataclass
class ParkedLaunch:
    tracked: Tracked
    job: str
    started_at: datetime
    alerted: bool = False


class ParkedLaunches:
    def __init__(self, ctx: Context, breakers: SiteBreakers, finish: Callable[[Tracked, bool], None],
                 recheck_s: float = RECHECK_S) -> None:
        self.ctx = ctx
        self.breakers = breakers
        self.claims = Claims(ctx)
        self._finish = finish
        self.recheck_s = recheck_s
        self._held: dict[str, list[ParkedLaunch]] = {}  # the consumer's loop only
        self._next_check: dict[str, float] = {}
        self._inbox: list[tuple[str, ParkedLaunch]] = []  # from deployments' threads
        self._inbox_lock = threading.Lock()
        self._clamp_logged: set[int] = set()  # heartbeat timeouts whose clamped margin was logged

    def __len__(self) -> int:
        with self._inbox_lock:
            waiting = len(self._inbox)
        return waiting + sum(len(v) for v in self._held.values())

    def count(self, site: str) -> int:
        return len(self._held.get(site, ()))

    def add(self, plan: Plan) -> None:
        """A deployment's actions, refused a build by the open breaker (from its thread's
        done-callback; the loop takes them in at its next round)."""
        now = self.breakers.wall()
        for tracked in plan.tracked:
            if tracked.gone or tracked.rejected:
                continue
            with self._inbox_lock:
                self._inbox.append((plan.site, ParkedLaunch(tracked, plan.job, self.hold_start(tracked, now))))
            log.info("event=action_held site=%s action=%s", plan.site, tracked.action.reference())

    def hold_start(self, tracked: Tracked, now: datetime) -> datetime:
        """The latest moment we know of, from our own clock and SQS's, never from the message body."""
        first_seen = now - timedelta(seconds=max(0.0, self.ctx.clock() - tracked.received_at))
        sent = [datetime.fromtimestamp(m.sent_at_ms / 1000, timezone.utc) for m in tracked.take_messages()
                if m.sent_at_ms > 0]
        return min(now, max([first_seen, *sent]))

    def _take_inbox(self, now: float) -> None:
        with self._inbox_lock:
            inbox, self._inbox = self._inbox, []
        for site, h in inbox:
            self._held.setdefault(site, []).append(h)
            self._next_check.setdefault(site, now + self.recheck_s)

    # --- each round -------------------------------------------------------------------------------

    def tend(self, now: float) -> list[Plan]:
        """Upkeep of every held action; the plans to start for sites whose breaker closed."""
        plans: list[Plan] = []
        self._take_inbox(now)
        for site in list(self._held):
            self._keep(site, now)
            if self._held[site] and now >= self._next_check.get(site, 0.0):
                self._next_check[site] = now + self.recheck_s
                if not self.breakers.state(site, held=len(self._held[site])).is_open:
                    plans += self._plans(site)
            if not self._held.get(site):
                self._held.pop(site, None)
                self._next_check.pop(site, None)
            self.breakers.metrics.held.labels(site).set(self.count(site))
        return plans

    def _keep(self, site: str, now: float) -> None:
        live = [h for h in self._held[site] if not h.tracked.gone and not h.tracked.rejected]
        for h in self._held[site]:
            if h not in live:
                self._finish(h.tracked, h.tracked.gone)
        self.claims.heartbeat([h.tracked for h in live], now)
        kept = []
        wall = self.breakers.wall()
        for h in live:
            if h.tracked.gone or h.tracked.rejected:
                self._finish(h.tracked, h.tracked.gone)
                continue
            self.ctx.messages.keep_invisible(h.tracked, now, self.ctx.config.visibility_timeout_s)
            if self._decide(site, h, wall):
                kept.append(h)
        self._held[site] = kept

    def _decide(self, site: str, h: ParkedLaunch, wall: datetime) -> bool:
        """False when the action left the hold (completed with its default result)."""
        action, margin_s = h.tracked.action, self.ctx.config.breaker.margin_s
        heartbeat_timeout = self.ctx.autoscaling.heartbeat_timeout_s(action)
        used_s = effective_margin_s(margin_s, global_timeout_s(heartbeat_timeout))
        if used_s < margin_s and heartbeat_timeout not in self._clamp_logged:
            self._clamp_logged.add(heartbeat_timeout)
            log.warning("event=breaker_margin_clamped margin_s=%g used_s=%g heartbeat_timeout_s=%d "
                        "fix=%r", margin_s, used_s, heartbeat_timeout,
                        "lower lifecycle.breaker.margin_s below the hooks' global timeout (100 x HeartbeatTimeout)")
        decision = park_decision_for_hook(wall, h.started_at, heartbeat_timeout, margin_s)
        if decision is Park.PARK:
            return True
        default = self.ctx.autoscaling.default_result(action)
        if decision is Park.ALERT_NEAR_TIMEOUT:
            if not h.alerted:
                h.alerted = True
                left = seconds_left(wall, h.started_at, global_timeout_s(heartbeat_timeout), used_s)
                log.warning("event=held_near_timeout site=%s action=%s seconds_left=%d default=%s",
                            site, action.reference(), left, default)
                self.breakers.alerts.send(texts.hold_near_timeout(site, action.group, action.instance_id,
                                                                  left, default))
            return True
        if not h.alerted:  # the consumer was down through the alert window: say it now
            h.alerted = True
            self.breakers.alerts.send(texts.hold_near_timeout(site, action.group, action.instance_id, 0, default))
        log.warning("event=held_timeout site=%s action=%s result=%s", site, action.reference(), default)
        completed = self.claims.complete(h.tracked, default, None)
        if completed:
            self.ctx.messages.delete_served(h.tracked)
            self.breakers.metrics.hold_timeouts.labels(default).inc()
            if default == Result.ABANDON and not h.tracked.gone:
                self.breakers.abandoned(site, action.group, action.instance_id, "held until the hook's timeout",
                                        None)
        self._finish(h.tracked, completed)
        return False

    def _plans(self, site: str) -> list[Plan]:
        """One plan per job for everything held for the site: the breaker has closed."""
        by_job: dict[str, list[Tracked]] = {}
        for h in self._held.pop(site, []):
            by_job.setdefault(h.job, []).append(h.tracked)
        self._next_check.pop(site, None)
        for job, tracked in by_job.items():
            log.info("event=held_released site=%s job=%s actions=%d", site, job, len(tracked))
        return [Plan(site, job, tuple(tracked), checked=True) for job, tracked in by_job.items()]

    def release_all(self) -> None:
        """Shutting down: every held action's messages go back to the queue for the next consumer."""
        self._take_inbox(0.0)
        for site in list(self._held):
            for h in self._held.pop(site):
                self.ctx.messages.release(h.tracked.take_messages())
                self._finish(h.tracked, False)
        self._next_check.clear()
