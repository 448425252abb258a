"""Roll a site through a deploy batch by batch: out, drained, deployed, verified, back in, healthy.

The order of events for one batch, and why:
1. read where its hosts are registered now (every target group and port, every classic ELB);
2. record that on the hosts (helper/deploys/rollout_record.py) BEFORE deregistering, so a rollout
   killed from here on leaves a record of every host it took out;
3. deregister everywhere, and wait until no target group still drains them (bounded; a classic
   ELB shows no draining state, so its connection-draining timeout is waited out);
4. run the deploy (and verify) for exactly this batch (`run_batch`, given by the command line);
5. on success register each host back where it was, wait until every load balancer says
   healthy (bounded), then clear the record; on failure (or never healthy) the hosts stay out,
   marked failed, for a person to decide.
The rollout stops once more hosts failed than `max_failed`; with `on_failure: rollback` the
batches already done get the previous revision through the same steps. Hosts not begun stay on
the old revision, in service. Every wait is bounded; nothing here sleeps a fixed time except
between polls of a state that is being waited for.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from helper.config.rollout import RolloutConfig
from helper.deploys.hold_record import holder_text
from helper.deploys.load_balancers import LoadBalancers, Membership, Timing
from helper.deploys.rollout_plan import Batch, Plan, wait_bounds_s
from helper.deploys.rollout_record import Record, RolloutRecords, stamp

log = logging.getLogger(__name__)

DONE, FAILED, ROLLED_BACK, ROLLBACK_FAILED, NOT_BEGUN = "done", "failed", "rolled_back", "rollback_failed", "not_begun"
# Waits poll soon, then back off to POLL_S: a drain with nothing in flight or an app that is up at
# once ends in a tenth of a second, and a 300 s drain still costs one describe call a second. In
# between, the pause grows with the time already waited (OVERSHOOT of it), not by doubling: a wait
# then ends at most a quarter later than the state it waits for, where doubling could double it
# (bench/rollout.py: a host healthy at 0.35 s was seen at 0.7 s, in every batch).
FIRST_POLL_S = 0.1
POLL_S = 1.0
OVERSHOOT = 0.25

# run_batch(batch, revision) -> (ok, detail): deploy and verify exactly these hosts.
RunBatch = Callable[[Batch, str], "tuple[bool, str]"]


def wait_until(done: Callable[[], bool], bound_s: float, clock: Callable[[], float],
               sleep: Callable[[float], None], poll_s: float = POLL_S) -> bool:
    """Ask `done()` until it says yes (True) or `bound_s` passed (False); see OVERSHOOT."""
    started = clock()
    deadline = started + bound_s
    while True:
        if done():
            return True
        now = clock()
        if now >= deadline:
            return False
        sleep(min(poll_s, max(FIRST_POLL_S, OVERSHOOT * (now - started)), deadline - now))


@dataclass
class HostReport:
    instance_id: str
    batch: int
    status: str = NOT_BEGUN
    detail: str = ""


@dataclass
class Report:
    site: str
    revision: str
    previous: str | None
    hosts: dict[str, HostReport] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return all(h.status == DONE for h in self.hosts.values())

    def as_json(self) -> dict:
        return {"site": self.site, "revision": self.revision, "previous": self.previous,
                "result": "succeeded" if self.succeeded else "failed",
                "hosts": [vars(h) for h in sorted(self.hosts.values(), key=lambda h: (h.batch, h.instance_id))]}

    def lines(self) -> list[str]:
        counts: dict[str, int] = {}
        for h in self.hosts.values():
            counts[h.status] = counts.get(h.status, 0) + 1
        head = f"rollout of {self.site} to {self.revision}: " + ("succeeded" if self.succeeded else "FAILED") + \
            " (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"
        return [head] + [f"  batch {h.batch} {h.instance_id} {h.status}{': ' + h.detail if h.detail else ''}"
                         for h in sorted(self.hosts.values(), key=lambda h: (h.batch, h.instance_id))]


class Rollout:
    def __init__(self, plan: Plan, config: RolloutConfig, lbs: LoadBalancers, records: RolloutRecords,
                 run_batch: RunBatch, holder: str, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_s: float = POLL_S,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.plan, self.config, self.lbs, self.records = plan, config, lbs, records
        self.run_batch, self.holder = run_batch, holder
        self.clock, self.sleep, self.poll_s, self.now = clock, sleep, poll_s, now

    # --- one batch ----------------------------------------------------------------------------

    def _wait(self, done: Callable[[], bool], bound_s: float) -> bool:
        return wait_until(done, bound_s, self.clock, self.sleep, self.poll_s)

    def _out(self, batch: Batch) -> tuple[list[Membership], list[Timing]]:
        members = self.lbs.memberships(list(batch.instance_ids))
        until = stamp(self.now(), self.config.ttl_s)
        self.records.take_out(self.plan.site, self.holder, until, members)
        self.lbs.deregister(members)
        timings = self.lbs.timing(members)
        drain_s, _ = wait_bounds_s([t.drain_s for t in timings], [])
        bound_s = min(self.config.drain_timeout_s, drain_s + self.poll_s)
        started = self.clock()
        if not self._wait(lambda: self.lbs.drained(members), bound_s):
            log.warning("event=drain_timeout site=%s batch=%d waited_s=%.0f", self.plan.site, batch.number, bound_s)
        classic_s = max((t.drain_s for t in timings if t.kind == "elb"), default=0.0)
        left_s = min(classic_s, self.config.drain_timeout_s) - (self.clock() - started)
        if left_s > 0:  # a classic ELB says nothing of its draining: its timeout is the bound
            self._wait(lambda: False, left_s)
        return members, timings

    def _back(self, batch: Batch, members: list[Membership], timings: list[Timing]) -> bool:
        """Put them back; wait for healthy, bounded by the health checks read when they went out."""
        self.lbs.register(members)
        _, healthy_s = wait_bounds_s([], [t.health_check for t in timings])
        bound_s = min(self.config.healthy_timeout_s, healthy_s)
        return self._wait(lambda: self.lbs.healthy(members), bound_s)

    def _fail(self, batch: Batch, members: list[Membership]) -> None:
        records, _ = self.records.read(self.plan.site)
        for record in records:
            if record.instance_id in batch.instance_ids:
                self.records.mark_failed(record)
        for instance_id in batch.instance_ids:  # a host with no load balancer still gets a record
            if not any(r.instance_id == instance_id for r in records):
                until = stamp(self.now(), self.config.ttl_s)
                self.records.take_out(self.plan.site, self.holder, until, [])
                self.records.mark_failed(Record(instance_id, self.plan.site, "failed", until, self.holder, ()))

    def one_batch(self, batch: Batch, revision: str) -> tuple[bool, str]:
        log.info("event=batch_out site=%s batch=%d hosts=%s", self.plan.site, batch.number, ",".join(batch.instance_ids))
        members, timings = self._out(batch)
        ok, detail = self.run_batch(batch, revision)
        if ok and not self._back(batch, members, timings):
            self.lbs.deregister(members)  # never healthy: out again, for a person to look at
            ok, detail = False, "not healthy in its load balancers in time"
        if not ok:
            self._fail(batch, members)
            log.warning("event=batch_failed site=%s batch=%d detail=%r", self.plan.site, batch.number, detail)
            return False, detail
        self.records.clear(list(batch.instance_ids))
        log.info("event=batch_done site=%s batch=%d", self.plan.site, batch.number)
        return True, ""

    # --- the whole site -------------------------------------------------------------------------

    def run(self, revision: str, previous: str | None) -> Report:
        report = Report(self.plan.site, revision, previous)
        for batch in self.plan.batches:
            for instance_id in batch.instance_ids:
                report.hosts[instance_id] = HostReport(instance_id, batch.number)
        done: list[Batch] = []
        failed = 0
        for batch in self.plan.batches:
            ok, detail = self.one_batch(batch, revision)
            for instance_id in batch.instance_ids:
                report.hosts[instance_id].status = DONE if ok else FAILED
                report.hosts[instance_id].detail = detail
            if ok:
                done.append(batch)
                continue
            failed += len(batch.instance_ids)
            if failed > self.config.max_failed:
                break
        if not report.succeeded and self.config.on_failure == "rollback" and previous and done:
            for batch in done:
                ok, detail = self.one_batch(batch, previous)
                for instance_id in batch.instance_ids:
                    report.hosts[instance_id].status = ROLLED_BACK if ok else ROLLBACK_FAILED
                    report.hosts[instance_id].detail = detail
        return report


def abort(records: RolloutRecords, lbs: LoadBalancers, site: str, holder: str | None = None,
          serving: set[str] | None = None, expired_at: datetime | None = None) -> tuple[list[str], list[str]]:
    """Put every host a rollout of the site took out (of `holder`'s only, when given) back where
    its record says, except failed ones; clear their records. (restored ids, left failed ids).

    A record is an instance tag anyone with ec2:CreateTags can write: with `serving` (the load
    balancers that serve the site's hosts now), a host goes back only into one of those, never
    into a load balancer a forged record names. With `expired_at`, only the records expired by
    then (the consumer's pass: a live rollout's hosts are its own)."""
    found, _ = records.read(site)
    restored, left = [], []
    for record in found:
        if holder is not None and record.holder != holder_text(holder):
            continue
        if expired_at is not None and not record.expired(expired_at):
            continue
        if record.state == "failed":
            left.append(record.instance_id)
            continue
        back = [m for m in record.memberships if serving is None or m.target in serving]
        for m in record.memberships:
            if m not in back:
                log.warning("event=rollout_abort_refused instance=%s target=%r reason=not_serving_the_site",
                            record.instance_id, m.target)
        lbs.register(back)
        records.clear([record.instance_id])
        restored.append(record.instance_id)
    return restored, left
