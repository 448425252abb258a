"""Auto Scaling's side of a deployment: check its actions, keep them alive, complete them.

Before anything is queued the instances' states are checked (one describe call per 50)
and every claim is judged by a heartbeat: AWS refuses a forged token, and a refused claim
is dead-lettered. While the build runs each action is heartbeaten before its hook times
out; at the end it is completed with an explicit result, on its own bounded retry.
"""

from __future__ import annotations

import logging
import threading

from helper.aws.results import Result
from helper.consumer.action import LifecycleAction
from helper.consumer.autoscaling import (
    TOKEN_REJECTED,
    ActionGone,
    AutoScalingError,
    Throttled,
    Waiting,
    mismatch,
    reconciled_action,
)
from helper.consumer.backoff import backoff_s
from helper.consumer.context import Context
from helper.consumer.inflight import Claim, Tracked

log = logging.getLogger(__name__)

# Completion retries on throttling for at most this long; beyond it the message stays
# and its next delivery completes the action from the finished build's result.
COMPLETE_DEADLINE_S = 120.0


class Claims:
    """The Auto Scaling calls one deployment makes for its actions."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _heartbeat_interval_s(self, action: LifecycleAction) -> float:
        cfg = self.ctx.config
        if cfg.heartbeat_interval_s:  # fixed: no DescribeLifecycleHooks call needed for the hook's timeout
            return cfg.heartbeat_interval_s
        return cfg.heartbeat_interval_for_s(self.ctx.autoscaling.heartbeat_timeout_s(action))

    def action_gone(self, tracked: Tracked, why: str) -> None:
        tracked.mark_gone()
        log.info("event=action_gone action=%s reason=%r", tracked.action.reference(), why)
        self.ctx.metrics.actions_gone.inc()
        self.ctx.messages.delete_served(tracked)

    def reject(self, tracked: Tracked, claim: Claim, reason: str) -> None:
        """AWS does not know this claim: dead-letter its messages; the next claim (if any) is served."""
        for message in claim.messages:
            self.ctx.messages.reject(message, claim.action, reason)
        tracked.reject(claim)  # the next claim is heartbeaten at once

    # --- checks before anything is queued ------------------------------------------------

    def check_states(self, live: list[Tracked]) -> None:
        """Reject actions whose instance is not in their group, waiting for this transition.

        One DescribeAutoScalingInstances call per 50 instances, before any heartbeat: a flood
        of forged messages costs a call, not a heartbeat each.
        """
        seen = self.ctx.autoscaling.describe_instances([t.action.instance_id for t in live])
        for tracked in live:
            reason = mismatch(tracked.action, seen.get(tracked.action.instance_id))
            if reason is not None:
                for claim in list(tracked.claims):
                    self.reject(tracked, claim, reason)
                continue
            for claim in list(tracked.claims):  # each claim names its own hook
                wrong = self.ctx.autoscaling.wrong_hook(claim.action)
                if wrong is not None:
                    self.reject(tracked, claim, wrong)

    def _judge(self, tracked: Tracked, claim: Claim) -> None:
        """Let AWS say whether a token is real: a heartbeat with a forged one is a ValidationError."""
        try:
            self.ctx.autoscaling.heartbeat(claim.action)
            tracked.confirm(claim)
            self.ctx.metrics.heartbeats.inc()
        except ActionGone:
            self.reject(tracked, claim, TOKEN_REJECTED)

    @staticmethod
    def confirmed(live: list[Tracked]) -> bool:
        """Every action about to get a build is known to AWS (a heartbeat for its claim answered)."""
        return all(t.served().confirmed for t in live)

    # --- while the build runs ------------------------------------------------------------

    def heartbeat(self, live: list[Tracked], now: float) -> None:
        """Judge new claims, and heartbeat each action whose time has come."""
        for tracked in live:
            for claim in tracked.unjudged():
                try:
                    self._judge(tracked, claim)
                except (Throttled, AutoScalingError) as exc:  # judged on a later round
                    self.ctx.metrics.heartbeat_errors.labels(type(exc).__name__).inc()
            # Not yet confirmed: at once, before any build (and the hook timer of a
            # redelivered or reconciled action has run for an unknown while).
            schedule = tracked.schedule
            due = now if schedule.heartbeat_at is None else schedule.heartbeat_at
            if now < due or tracked.rejected:
                continue
            claim = tracked.served()
            try:
                # Not yet confirmed: by its token, so AWS says whether it is real. Confirmed: by
                # instance id, as completion goes. AWS checks that a token is real, not whose it is:
                # a message pairing waiting instance Y with X's genuine token passes, and heartbeats
                # by that token kept X alive while Y's own action timed out mid-build.
                self.ctx.autoscaling.heartbeat(claim.action, by_instance=claim.confirmed)
                tracked.confirm(claim)
                tracked.heartbeat_ok(now + self._heartbeat_interval_s(tracked.action))
                self.ctx.metrics.heartbeats.inc()
                log.debug("event=heartbeat action=%s next_in_s=%.1f", tracked.action.reference(),
                          schedule.heartbeat_at - now)
            except ActionGone as exc:
                if claim.confirmed or claim.action.token is None:
                    self.action_gone(tracked, str(exc))
                else:
                    self.reject(tracked, claim, TOKEN_REJECTED)
            except (Throttled, AutoScalingError) as exc:
                attempts = tracked.heartbeat_failed(now, backoff_s)
                self.ctx.metrics.heartbeat_errors.labels(type(exc).__name__).inc()
                log.warning("event=heartbeat_failed action=%s attempt=%d error=%r",
                            tracked.action.reference(), attempts, str(exc))

    def keep_passengers(self, riders: dict[Waiting, float], now: float) -> None:
        """Heartbeat, by instance id, each launch our build took along (helper/consumer/passengers.py):
        at once, then every interval, until AWS says it is gone (its holder completed it) or our build
        ends. Its hook timer may have run a while, and a passenger timing out mid-build would fail the
        build for every instance in it. Nothing here completes a passenger."""
        for waiting, due in list(riders.items()):
            if now < due:
                continue
            action = reconciled_action(waiting)
            try:
                self.ctx.autoscaling.heartbeat(action, by_instance=True)
                riders[waiting] = now + self._heartbeat_interval_s(action)
                self.ctx.metrics.heartbeats.inc()
            except ActionGone:
                del riders[waiting]
            except (Throttled, AutoScalingError) as exc:
                riders[waiting] = now + backoff_s(1)
                self.ctx.metrics.heartbeat_errors.labels(type(exc).__name__).inc()

    # --- at the end --------------------------------------------------------------------------

    def complete(self, tracked: Tracked, result: Result, build_number: int | None) -> bool:
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
                         tracked.action.reference(), result, build_number)
                return True
            except ActionGone as exc:
                if claim.confirmed or claim.action.token is None:
                    self.action_gone(tracked, str(exc))
                    return True
                self.reject(tracked, claim, TOKEN_REJECTED)  # a claim that arrived during the build
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
