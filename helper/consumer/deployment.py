"""One deployment: a Jenkins build that serves a batch of lifecycle actions.

deploy -> complete -> delete, in one thread per build. The wait loop does the
housekeeping each time its poll interval runs out (rq's monitor_work_horse): heartbeat
every action before its hook times out (helper/consumer/claims.py), keep every message
invisible, and ask Jenkins how the build is doing. Completion always runs with an explicit
result, and messages are deleted only after it, or after AWS says the action no longer exists.

A deployment follows exactly one build. Actions that builds already in Jenkins serve (a
crashed consumer's, a rival replica's) are handed back in a Handover, for the consumer to
start a deployment per build (helper/consumer/plan.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from helper.aws.results import Result
from helper.consumer import passengers
from helper.consumer.autoscaling import AutoScalingError, Throttled, Waiting
from helper.consumer.claims import Claims
from helper.consumer.context import Context
from helper.consumer.inflight import Tracked
from helper.consumer.jenkins_client import ACTIONS_PARAM, Found, JenkinsUnavailable, JobMissing, covers, serves
from helper.consumer.plan import (
    BREAKER_OPEN,
    UNREACHABLE,
    Ending,
    Finished,
    Handover,
    Parked,
    Plan,
    Settled,
    Stop,
    hand_over,
)

log = logging.getLogger(__name__)

# Asking a Jenkins that is down or lacks the job again every poll interval logged a line (and
# made a request) per interval for as long as it lasted (issue 19 item 19): each failure in a
# row doubles the wait, up to this. A minute keeps a recovered Jenkins found soon enough.
JENKINS_RETRY_MAX_S = 60.0


def jenkins_retry_s(poll_interval_s: float, failures: int) -> float:
    """When to ask Jenkins again after `failures` failed asks in a row: doubling, capped."""
    return min(JENKINS_RETRY_MAX_S, poll_interval_s * 2.0 ** min(failures - 1, 32))


class Deployment:
    def __init__(self, ctx: Context, plan: Plan) -> None:
        self.ctx = ctx
        self.plan = plan
        self.claims = Claims(ctx)
        self.queue_id: int | None = None
        self.build_number: int | None = None
        # Launches our build deploys whose messages other deployments hold (passengers.py), and
        # when each is heartbeaten next (claims.keep_passengers).
        self.passengers: tuple[Waiting, ...] = ()
        self.riders: dict[Waiting, float] = {}
        # The site's recorded revision when we saw the build start: what a scale-up build installs.
        # None for a build that started unseen (adopted running): the breaker then does not count it.
        self.revision_at_start: str | None = None
        self._checked = plan.checked

    # --- the parameters a scale-up build gets -----------------------------------

    def parameters(self) -> dict[str, str]:
        actions = [t.action for t in self.plan.tracked]
        return {
            "SITE": self.plan.site,
            "INSTANCE_IDS": ",".join(sorted({a.instance_id for a in actions} | {w.instance_id for w in self.passengers})),
            # Empty: the build settles the site's revision when it starts, so a build
            # queued behind a full deploy installs what that deploy installed.
            "REVISION": "",
            ACTIONS_PARAM: " ".join([a.reference() for a in actions] + passengers.references(self.passengers)),
            "DRY_RUN": "false",
            "SKIP_TESTS": "true",
        }

    # --- housekeeping -----------------------------------------------------------

    def _live(self) -> list[Tracked]:
        return [t for t in self.plan.tracked if not t.gone and not t.rejected]

    def _check_states(self) -> None:
        if self._checked:
            return
        try:
            self.claims.check_states(self._live())
            self._checked = True
        except (Throttled, AutoScalingError) as exc:  # checked on the next round
            self.ctx.metrics.aws_errors.labels("DescribeAutoScalingInstances").inc()
            log.warning("event=state_check_failed site=%s error=%r", self.plan.site, str(exc))

    def housekeeping(self, now: float) -> None:
        self.claims.heartbeat(self._live(), now)
        self.claims.keep_passengers(self.riders, now)
        for tracked in self._live():
            self.ctx.messages.keep_invisible(tracked, now, self.ctx.config.visibility_timeout_s)

    # --- Jenkins ------------------------------------------------------------------

    def _ensure_build(self) -> Handover | None:
        """Adopt the build that already serves these actions, or queue exactly one."""
        if self.plan.adopt is not None:
            self.queue_id, self.build_number = self.plan.adopt.queue_id, self.plan.adopt.build_number
            return None
        live = self._live()
        actions = [t.action for t in live]
        existing = self.ctx.jobs.find(self.plan.job, self.plan.site, {t.action: t.sent_ms() for t in live})
        if existing:
            return self._hand_over(existing)  # to deployments that follow them, and one for the rest
        refused = self._breaker_refuses()
        if refused is not None:
            return refused
        self.passengers = self._take_along(actions)
        self.queue_id = self.ctx.jobs.queue_build(self.plan.job, self.parameters())
        self.riders = dict.fromkeys(self.passengers, self.ctx.clock())
        self.ctx.metrics.builds_queued.inc()
        log.info("event=build_queued site=%s job=%s queue_id=%d actions=%d passengers=%d",
                 self.plan.site, self.plan.job, self.queue_id, len(actions), len(self.passengers))
        return self._yield_to_rivals()

    def _take_along(self, actions) -> tuple[Waiting, ...]:
        """The site's other launches waiting now, for this build to deploy too (passengers.py).

        Not finding them is no reason to wait: the build goes without them, and they get their own.
        """
        own = {a.instance_id for a in actions}
        room = self.ctx.config.batch_max_instances - len(own)
        if room <= 0 or self.plan.terminating or not all(a.launching and not a.into_warm_pool for a in actions):
            return ()
        try:
            return passengers.find(self.ctx.autoscaling, self.ctx.jobs, self.ctx.config, self.plan.site,
                                   self.plan.job, own, room)
        except (AutoScalingError, Throttled, JenkinsUnavailable) as exc:
            log.warning("event=passengers_unknown site=%s error=%r", self.plan.site, str(exc))
            return ()

    def _breaker_refuses(self) -> Parked | Finished | None:
        """No build while the site's breaker is open: hold the actions, or ABANDON them (on_open)."""
        breakers = self.ctx.breakers
        if breakers is None or self.plan.terminating or not breakers.state(self.plan.site).is_open:
            return None
        if self.ctx.config.breaker.on_open == "abandon":
            log.warning("event=breaker_abandons site=%s actions=%d", self.plan.site, len(self._live()))
            return Finished(BREAKER_OPEN)
        log.warning("event=breaker_holds site=%s actions=%d", self.plan.site, len(self._live()))
        return Parked(self.plan)

    def _hand_over(self, found: list[Found]) -> Handover:
        handover = hand_over(self.plan, found)
        for plan in handover.plans:
            if plan.adopt is not None:
                self.ctx.metrics.builds_adopted.inc()
                log.info("event=build_adopted site=%s queue_id=%s build=%s actions=%d",
                         plan.site, plan.adopt.queue_id, plan.adopt.build_number, len(plan.tracked))
        return handover

    def _yield_to_rivals(self) -> Handover | None:
        """Another replica may have queued for the same actions a moment ago.

        Queue ids only grow, so of two items the later one always sees the earlier:
        the lowest id wins and the other cancels itself during the job's quiet period.
        If the check or the cancel fails we keep our build: a second deploy of the
        same revision is harmless, a lost action is not.
        """
        mine = self.queue_id
        try:
            found = self.ctx.jobs.ours(self.plan.job, self.plan.site)
            rivals = [f for f in found if any(serves(f, t.action, t.sent_ms()) for t in self._live())
                      and f.queue_id != mine and (f.queue_id is None or f.queue_id < mine)]
            # An earlier build took one of our passengers along: ours goes again without it.
            again = not rivals and passengers.clash(found, self.passengers, mine)
            if not rivals and not again:
                return None
            self.ctx.jobs.cancel(mine)
        except JenkinsUnavailable as exc:
            log.warning("event=duplicate_check_failed queue_id=%d error=%r", mine, str(exc))
            return None
        self.queue_id, self.passengers, self.riders = None, (), {}
        if again:
            log.info("event=build_requeued queue_id=%d reason='an earlier build deploys a passenger'", mine)
            return None
        log.info("event=build_cancelled_duplicate queue_id=%d kept=%s", mine, rivals[0].queue_id)
        return self._hand_over(rivals)

    def _poll(self) -> Ending | None:
        """How the build ended, a handover of actions other builds serve, or None while it runs."""
        if self.queue_id is None and self.build_number is None:
            handover = self._ensure_build()
            if handover is not None:
                return handover
            if self.queue_id is None and self.build_number is None:
                return None  # cancelled to go again without a passenger: queued on the next round
            adopted = self.plan.adopt
            if adopted is not None and adopted.result and not adopted.building:
                return Finished(adopted.result)
        progress = self.ctx.jobs.progress(self.plan.job, self.queue_id, self.build_number)
        if progress.gone:  # the queue item expired before we saw it start: search again
            self.queue_id = None
            return None
        if progress.result == "CANCELLED" and self.plan.adopt is not None and self.build_number is None:
            # A build we follow but did not queue was cancelled before it started: its queuer gave it
            # up for an earlier one that took our action along, or a person did. Not our failure:
            # search again (that earlier build, or one of our own), never ABANDON for it.
            log.info("event=adopted_build_cancelled site=%s queue_id=%s", self.plan.site, self.queue_id)
            self.plan, self.queue_id = replace(self.plan, adopt=None), None
            return None
        if progress.build_number is not None and self.build_number is None:
            self.build_number = progress.build_number
            if self.ctx.breakers is not None:
                self.revision_at_start = self.ctx.breakers.recorded_revision(self.plan.site) or ""
            log.info("event=build_started site=%s job=%s build=%d", self.plan.site, self.plan.job, self.build_number)
        return None if progress.result is None else Finished(progress.result)

    def follow(self) -> Ending:
        clock, cfg = self.ctx.clock, self.ctx.config
        last_answer = clock()
        failures, ask_at = 0, clock()  # Jenkins is asked again at ask_at: later after each failure in a row
        while True:
            now = clock()
            self._check_states()
            self.housekeeping(now)  # every round, whatever Jenkins does: heartbeats keep their own time
            if not self._live():
                if self.queue_id is not None and self.build_number is None:
                    self._cancel_quietly()
                return Stop.GONE
            if self.ctx.release.is_set():
                return Stop.RELEASED
            queued = self.queue_id is not None or self.build_number is not None or self.plan.adopt is not None
            if not queued and not (self._checked and self.claims.confirmed(self._live())):
                last_answer = clock()  # Jenkins is not asked yet: its deadline has not started
                self.ctx.release.wait(cfg.poll_interval_s)
                continue
            if self.plan.job is None:  # nothing to build: checked and confirmed, it completes now
                return Finished(self.plan.outcome)
            if now < ask_at:
                self.ctx.release.wait(min(cfg.poll_interval_s, ask_at - now))
                continue
            try:
                ending = self._poll()
                last_answer, failures = clock(), 0
                if ending is not None:
                    return ending
            except JenkinsUnavailable as exc:  # JobMissing too: someone may be creating the job
                failures += 1
                self.ctx.metrics.jenkins_errors.inc()
                missing = isinstance(exc, JobMissing)
                if missing:
                    self.ctx.metrics.job_missing.inc()
                if failures & (failures - 1) == 0:  # the 1st, 2nd, 4th, 8th... failure in a row: a line per step
                    log.log(logging.ERROR if missing else logging.WARNING,
                            "event=%s site=%s job=%s attempt=%d error=%r fix=%r",
                            "jenkins_job_missing" if missing else "jenkins_unavailable", self.plan.site,
                            self.plan.job, failures, str(exc),
                            "create the job or fix lifecycle.jenkins.job (see doctor)" if missing
                            else "check that Jenkins is up and reachable (see doctor)")
                if clock() - last_answer > cfg.jenkins_deadline_s:
                    return Finished(UNREACHABLE)
                ask_at = clock() + jenkins_retry_s(cfg.poll_interval_s, failures)
                continue
            ask_at = clock() + cfg.poll_interval_s
            self.ctx.release.wait(cfg.poll_interval_s)

    def _cancel_quietly(self) -> None:
        try:
            self.ctx.jobs.cancel(self.queue_id)
        except JenkinsUnavailable as exc:
            log.warning("event=cancel_failed queue_id=%s error=%r", self.queue_id, str(exc))

    # --- the end --------------------------------------------------------------------

    def result_for(self, outcome: str) -> Result:
        if self.plan.terminating:
            return Result.CONTINUE  # a terminating instance goes either way; don't hold it
        return self.ctx.config.result_on.get(outcome, Result.ABANDON)

    def _release(self) -> None:
        for tracked in self._live():
            self.ctx.messages.release(tracked.take_messages())
        log.info("event=actions_released site=%s actions=%d build=%s",
                 self.plan.site, len(self._live()), self.build_number)

    def _release_other_claims(self) -> None:
        """Claims neither served nor refused (unjudged, or a second live action of the instance)
        go back to the queue, to be judged on their own."""
        for tracked in self.plan.tracked:
            if not tracked.rejected:
                self.ctx.messages.release([m for c in tracked.others() for m in c.messages])

    def _tell_breaker(self, outcome: str, completed: set[Tracked]) -> None:
        """Count a scale-up build's result, and alert each ABANDON.

        Only the deployment that completed an action itself counts the build: a rival replica
        that followed the same build finds its actions gone, and must not count it twice.
        """
        breakers = self.ctx.breakers
        if breakers is None or self.plan.terminating or self.plan.job is None:
            return
        url = self.ctx.jobs.build_url(self.plan.job, self.build_number)
        ours = [t for t in completed if not t.gone]
        # A build is counted once: by the deployment that queued it, or that followed it for the
        # very actions it was queued for (a killed replica's). Passengers' holders do not count it.
        adopted = self.plan.adopt
        counted = adopted is None or any(covers(r, t.action) for t in ours for r in adopted.refs)
        if ours and counted and self.build_number is not None:
            breakers.record(self.plan.site, outcome, url, self.revision_at_start)
        if self.result_for(outcome) is Result.ABANDON:
            for tracked in ours:
                breakers.abandoned(self.plan.site, tracked.action.group, tracked.action.instance_id, outcome, url)

    def _settle(self, ending: Stop | Finished) -> Settled:
        completed: set[Tracked] = set()
        if ending is Stop.RELEASED:
            self._release()
        elif isinstance(ending, Finished):
            result = None
            for tracked in self._live():
                result = self.result_for(ending.result)
                if self.claims.complete(tracked, result, self.build_number):
                    completed.add(tracked)
                    self.ctx.messages.delete_served(tracked)
            log.info("event=deployment_done site=%s build=%s outcome=%s result=%s",
                     self.plan.site, self.build_number, ending.result, result)
            self._tell_breaker(ending.result, completed)
        if ending is not Stop.RELEASED:
            self._release_other_claims()
        return Settled(tuple((t, t in completed or t.gone) for t in self.plan.tracked))

    def run(self) -> Settled | Handover | Parked:
        """Follow the build to the end and settle every action, or hand the actions over.

        If following fails, the actions are released as on shutdown before the error goes on.
        """
        ending: Ending = Stop.RELEASED
        try:
            # A plan without a job too: its actions are checked against Auto Scaling and confirmed
            # by a heartbeat before anything completes them (issue 19 item 1).
            ending = self.follow()
        finally:
            if not isinstance(ending, (Handover, Parked)):
                settled = self._settle(ending)
        return ending if isinstance(ending, (Handover, Parked)) else settled
