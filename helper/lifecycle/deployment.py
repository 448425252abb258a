"""One deployment: a Jenkins build that serves a batch of lifecycle actions.

deploy -> complete -> delete, in one thread per build. The wait loop does the
housekeeping each time its poll interval runs out (rq's monitor_work_horse): heartbeat
every action before its hook times out, keep every message invisible, and ask Jenkins
how the build is doing. Completion always runs with an explicit result, and messages
are deleted only after it, or after AWS says the action no longer exists.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field

from helper.lifecycle.autoscaling import TOKEN_REJECTED, ActionGone, AutoScalingError, Throttled, mismatch
from helper.lifecycle.inflight import Claim, Tracked
from helper.lifecycle.jenkins_client import ACTIONS_PARAM, Found, JenkinsUnavailable, JobMissing
from helper.lifecycle.sqs import QueueError

log = logging.getLogger(__name__)

# Renew a message's invisibility when this fraction of it is left: one slow poll
# cannot let it reappear (and be handed to another consumer) mid-build.
VISIBILITY_RENEW_FRACTION = 0.5
# Completion retries on throttling for at most this long; beyond it the message stays
# and its next delivery completes the action from the finished build's result.
COMPLETE_DEADLINE_S = 120.0
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 10.0
RELEASED = "RELEASED"  # shutting down: hand the actions to the next consumer
GONE = "GONE"  # every action ended without us: nothing to complete


def backoff_s(attempt: int) -> float:
    """Full-jitter exponential back-off (AWS architecture blog), capped."""
    # The exponent is capped first: 2.0 ** 1024 overflows a float, and a long outage
    # counts that many attempts.
    return random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** min(attempt, 32)))


@dataclass
class Plan:
    """What to run for a batch: `job` None means complete at once with `outcome`."""

    site: str
    job: str | None
    tracked: list[Tracked]
    outcome: str = "SUCCESS"
    adopt: Found | None = None
    terminating: bool = False
    checked: bool = False  # the instances' states were checked already (a batch split off another)


@dataclass
class _Timers:
    heartbeat_at: dict[int, float] = field(default_factory=dict)
    heartbeat_failures: dict[int, int] = field(default_factory=dict)
    visible_at: dict[str, float] = field(default_factory=dict)


class Deployment:
    def __init__(self, ctx, plan: Plan) -> None:
        self.ctx = ctx  # the Consumer: its seams, config, metrics, clock and release event
        self.plan = plan
        self.queue_id: int | None = None
        self.build_number: int | None = None
        self._timers = _Timers()

    # --- the parameters a scale-up build gets -----------------------------------

    def parameters(self) -> dict[str, str]:
        actions = [t.action for t in self.plan.tracked]
        return {
            "SITE": self.plan.site,
            "INSTANCE_IDS": ",".join(sorted({a.instance_id for a in actions})),
            # Empty: the build settles the site's revision when it starts, so a build
            # queued behind a full deploy installs what that deploy installed.
            "REVISION": "",
            ACTIONS_PARAM: " ".join(a.reference() for a in actions),
            "DRY_RUN": "false",
            "SKIP_TESTS": "true",
        }

    # --- housekeeping -----------------------------------------------------------

    def _live(self) -> list[Tracked]:
        return [t for t in self.plan.tracked if not t.gone and not t.rejected]

    def _heartbeat_interval_s(self, tracked: Tracked) -> float:
        cfg = self.ctx.config
        if cfg.heartbeat_interval_s:
            return cfg.heartbeat_interval_s
        return self.ctx.autoscaling.heartbeat_timeout_s(tracked.action) * cfg.heartbeat_fraction

    def _action_gone(self, tracked: Tracked, why: str) -> None:
        tracked.gone = True
        log.info("event=action_gone action=%s reason=%r", tracked.action.reference(), why)
        self.ctx.metrics.actions_gone.inc()
        self._delete_messages(tracked)

    def _reject(self, tracked: Tracked, claim: Claim, reason: str) -> None:
        """AWS does not know this claim: dead-letter its messages; the next claim (if any) is served."""
        for message in claim.messages:
            self.ctx.reject(message, claim.action, reason)
        tracked.reject(claim)
        self._timers.heartbeat_at.pop(id(tracked), None)  # the next claim is heartbeaten at once

    # --- checks with Auto Scaling before anything is queued ---------------------

    def _check_states(self) -> None:
        """Reject actions whose instance is not in their group, waiting for this transition.

        One DescribeAutoScalingInstances call per 50 instances, before any heartbeat: a flood
        of forged messages costs a call, not a heartbeat each.
        """
        if self.plan.checked:
            return
        live = self._live()
        seen = self.ctx.autoscaling.describe_instances([t.action.instance_id for t in live])
        for tracked in live:
            reason = mismatch(tracked.action, seen.get(tracked.action.instance_id))
            if reason is not None:
                for claim in list(tracked.claims):
                    self._reject(tracked, claim, reason)
        self.plan.checked = True

    def _judge(self, tracked: Tracked, claim: Claim) -> None:
        """Let AWS say whether a token is real: a heartbeat with a forged one is a ValidationError."""
        try:
            self.ctx.autoscaling.heartbeat(claim.action)
            claim.confirmed = True
            self.ctx.metrics.heartbeats.inc()
        except ActionGone:
            self._reject(tracked, claim, TOKEN_REJECTED)

    def _confirmed(self) -> bool:
        """Every action about to get a build is known to AWS (a heartbeat for its claim answered)."""
        return self.plan.checked and all(t.served().confirmed for t in self._live())

    # --- housekeeping -------------------------------------------------------------

    def housekeeping(self, now: float) -> None:
        for tracked in self._live():
            key = id(tracked)
            for claim in tracked.unjudged():
                try:
                    self._judge(tracked, claim)
                except (Throttled, AutoScalingError) as exc:  # judged on a later round
                    self.ctx.metrics.heartbeat_errors.labels(type(exc).__name__).inc()
            # Not yet confirmed: at once, before any build (and the hook timer of a
            # redelivered or reconciled action has run for an unknown while).
            due = self._timers.heartbeat_at.get(key, now)
            if now < due or tracked.rejected:
                continue
            claim = tracked.served()
            try:
                self.ctx.autoscaling.heartbeat(claim.action)
                claim.confirmed = True
                self._timers.heartbeat_failures[key] = 0
                self._timers.heartbeat_at[key] = now + self._heartbeat_interval_s(tracked)
                self.ctx.metrics.heartbeats.inc()
            except ActionGone as exc:
                if claim.confirmed or claim.action.token is None:
                    self._action_gone(tracked, str(exc))
                else:
                    self._reject(tracked, claim, TOKEN_REJECTED)
            except (Throttled, AutoScalingError) as exc:
                failures = self._timers.heartbeat_failures.get(key, 0) + 1
                self._timers.heartbeat_failures[key] = failures
                self._timers.heartbeat_at[key] = now + backoff_s(failures)
                self.ctx.metrics.heartbeat_errors.labels(type(exc).__name__).inc()
                log.warning("event=heartbeat_failed action=%s attempt=%d error=%r",
                            tracked.action.reference(), failures, str(exc))
        self._renew_visibility(now)

    def _renew_visibility(self, now: float) -> None:
        timeout = self.ctx.config.visibility_timeout_s
        for tracked in self._live():
            for message in tracked.take_messages():
                due = self._timers.visible_at.setdefault(
                    message.receipt_handle, tracked.received_at + timeout * VISIBILITY_RENEW_FRACTION)
                if now < due:
                    continue
                try:
                    self.ctx.queue.set_visibility(message, timeout)
                    self._timers.visible_at[message.receipt_handle] = now + timeout * VISIBILITY_RENEW_FRACTION
                except QueueError as exc:
                    self.ctx.metrics.aws_errors.labels("ChangeMessageVisibility").inc()
                    log.warning("event=visibility_failed message=%s error=%r", message.message_id, str(exc))

    # --- Jenkins ------------------------------------------------------------------

    def _ensure_build(self) -> None:
        """Adopt the build that already serves these actions, or queue exactly one."""
        if self.plan.adopt is not None:
            self.queue_id, self.build_number = self.plan.adopt.queue_id, self.plan.adopt.build_number
            return
        actions = [t.action for t in self._live()]
        existing = self.ctx.jobs.find(self.plan.job, self.plan.site, actions)
        if existing:
            self.ctx.split(self, existing)  # adopts what they cover; we keep the rest
            return
        self.queue_id = self.ctx.jobs.queue_build(self.plan.job, self.parameters())
        self.ctx.metrics.builds_queued.inc()
        log.info("event=build_queued site=%s job=%s queue_id=%d actions=%d",
                 self.plan.site, self.plan.job, self.queue_id, len(actions))
        self._yield_to_rivals(actions)

    def _yield_to_rivals(self, actions) -> None:
        """Another replica may have queued for the same actions a moment ago.

        Queue ids only grow, so of two items the later one always sees the earlier:
        the lowest id wins and the other cancels itself during the job's quiet period.
        If the check or the cancel fails we keep our build: a second deploy of the
        same revision is harmless, a lost action is not.
        """
        mine = self.queue_id
        try:
            rivals = [f for f in self.ctx.jobs.find(self.plan.job, self.plan.site, actions)
                      if f.queue_id != mine and (f.queue_id is None or f.queue_id < mine)]
            if not rivals:
                return
            self.ctx.jobs.cancel(mine)
        except JenkinsUnavailable as exc:
            log.warning("event=duplicate_check_failed queue_id=%d error=%r", mine, str(exc))
            return
        log.info("event=build_cancelled_duplicate queue_id=%d kept=%s", mine, rivals[0].queue_id)
        self.queue_id = None
        self.ctx.split(self, rivals)

    def _poll(self) -> str | None:
        """The build's final result, GONE if other deployments took every action, or None."""
        if self.queue_id is None and self.build_number is None:
            self._ensure_build()
            if not self.plan.tracked:
                return GONE
            if self.queue_id is None and self.build_number is None:
                return None  # some actions were handed over; queue for the rest next time
            adopted = self.plan.adopt
            if adopted is not None and adopted.result and not adopted.building:
                return adopted.result
        progress = self.ctx.jobs.progress(self.plan.job, self.queue_id, self.build_number)
        if progress.gone:  # the queue item expired before we saw it start: search again
            self.queue_id = None
            return None
        if progress.build_number is not None and self.build_number is None:
            self.build_number = progress.build_number
            log.info("event=build_started site=%s job=%s build=%d", self.plan.site, self.plan.job, self.build_number)
        return progress.result

    def follow(self) -> str:
        clock, cfg = self.ctx.clock, self.ctx.config
        last_answer = clock()
        while True:
            now = clock()
            try:
                self._check_states()
            except (Throttled, AutoScalingError) as exc:  # checked on the next round
                self.ctx.metrics.aws_errors.labels("DescribeAutoScalingInstances").inc()
                log.warning("event=state_check_failed site=%s error=%r", self.plan.site, str(exc))
            self.housekeeping(now)
            if not self._live():
                if self.queue_id is not None and self.build_number is None:
                    self._cancel_quietly()
                return GONE
            if self.ctx.release.is_set():
                return RELEASED
            queued = self.queue_id is not None or self.build_number is not None or self.plan.adopt is not None
            if not queued and not self._confirmed():
                last_answer = clock()  # Jenkins is not asked yet: its deadline has not started
                self.ctx.release.wait(cfg.poll_interval_s)
                continue
            try:
                result = self._poll()
                last_answer = clock()
                if result is not None:
                    return result
            except JobMissing as exc:
                self.ctx.metrics.jenkins_errors.inc()
                self.ctx.job_missing.inc()
                log.error("event=jenkins_job_missing site=%s job=%s error=%r fix=%r", self.plan.site,
                          self.plan.job, str(exc), "create the job or fix lifecycle.jenkins.job (see doctor)")
                if clock() - last_answer > cfg.jenkins_deadline_s:
                    return "UNREACHABLE"
            except JenkinsUnavailable as exc:
                self.ctx.metrics.jenkins_errors.inc()
                log.warning("event=jenkins_unavailable site=%s error=%r", self.plan.site, str(exc))
                if clock() - last_answer > cfg.jenkins_deadline_s:
                    return "UNREACHABLE"
            self.ctx.release.wait(cfg.poll_interval_s)

    def _cancel_quietly(self) -> None:
        try:
            self.ctx.jobs.cancel(self.queue_id)
        except JenkinsUnavailable as exc:
            log.warning("event=cancel_failed queue_id=%s error=%r", self.queue_id, str(exc))

    # --- completion -----------------------------------------------------------------

    def result_for(self, outcome: str) -> str:
        if self.plan.terminating:
            return "CONTINUE"  # a terminating instance goes either way; don't hold it
        return self.ctx.config.result_on.get(outcome, "ABANDON")

    def _complete(self, tracked: Tracked, result: str) -> bool:
        """True when the action is finished (by us or already), so its messages may go."""
        deadline = self.ctx.clock() + COMPLETE_DEADLINE_S
        attempt = 0
        while True:
            claim = tracked.served()
            try:
                self.ctx.autoscaling.complete(claim.action, result)
                self.ctx.metrics.completed.labels(result).inc()
                self.ctx.metrics.observe_latency(tracked)
                log.info("event=action_completed action=%s result=%s build=%s",
                         tracked.action.reference(), result, self.build_number)
                return True
            except ActionGone as exc:
                if claim.confirmed or claim.action.token is None:
                    self._action_gone(tracked, str(exc))
                    return True
                self._reject(tracked, claim, TOKEN_REJECTED)  # a claim that arrived during the build
                if tracked.rejected:
                    return False
            except (Throttled, AutoScalingError) as exc:
                attempt += 1
                self.ctx.metrics.aws_errors.labels("CompleteLifecycleAction").inc()
                if self.ctx.clock() >= deadline or isinstance(exc, AutoScalingError):
                    log.error("event=complete_failed action=%s result=%s error=%r",
                              tracked.action.reference(), result, str(exc))
                    return False
                # Its own event: completion keeps going while the consumer shuts down.
                threading.Event().wait(backoff_s(attempt))

    def _delete_messages(self, tracked: Tracked) -> None:
        """The served claim's messages: its action is finished."""
        for message in tracked.messages:
            try:
                self.ctx.queue.delete(message)
                tracked.drop(message)
                self.ctx.metrics.deleted.inc()
            except QueueError as exc:
                self.ctx.metrics.aws_errors.labels("DeleteMessage").inc()
                log.warning("event=delete_failed message=%s error=%r", message.message_id, str(exc))

    def _release_messages(self, messages) -> None:
        for message in messages:
            try:
                self.ctx.queue.set_visibility(message, 0)
            except QueueError as exc:
                log.warning("event=release_failed message=%s error=%r", message.message_id, str(exc))

    def _release(self) -> None:
        for tracked in self._live():
            self._release_messages(tracked.take_messages())
        log.info("event=actions_released site=%s actions=%d build=%s",
                 self.plan.site, len(self._live()), self.build_number)

    def _release_other_claims(self) -> None:
        """Claims neither served nor refused (unjudged, or a second live action of the instance)
        go back to the queue, to be judged on their own."""
        for tracked in self.plan.tracked:
            if not tracked.rejected:
                self._release_messages([m for c in tracked.others() for m in c.messages])

    def run(self) -> None:
        outcome = RELEASED
        completed: set[int] = set()
        try:
            outcome = self.plan.outcome if self.plan.job is None else self.follow()
        finally:
            if outcome == RELEASED:
                self._release()
            elif outcome != GONE:
                result = None
                for tracked in self._live():
                    result = self.result_for(outcome)
                    if self._complete(tracked, result):
                        completed.add(id(tracked))
                        self._delete_messages(tracked)
                log.info("event=deployment_done site=%s build=%s outcome=%s result=%s",
                         self.plan.site, self.build_number, outcome, result)
            if outcome != RELEASED:
                self._release_other_claims()
            for tracked in self.plan.tracked:
                self.ctx.finished(tracked, completed=id(tracked) in completed or tracked.gone)

