"""What the consumer does every reconcile interval, apart from receiving: one pass of upkeep.

- Reconcile: deploy instances waiting in Pending:Wait that no message brought us (a lost or
  purged notification). An instance must be seen waiting, and not in flight, on two passes in a
  row: a notification still in the queue (or with another replica) gets that long to claim it.
- Expire fleet holds whose build died without its post (issue 11), on every group a hold can
  cover in our region, not only the routed ones (issue 19 item 6).
- Read each site's breaker, so a full deploy that recorded another revision closes it even when
  nothing is parked.

Each part fails on its own: logged and counted, tried again next pass, never stopping the loop.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping

from helper.breaker.sites import SiteBreakers
from helper.consumer.action import LifecycleAction
from helper.consumer.autoscaling import AutoScaling, AutoScalingError, Throttled, reconciled_action
from helper.consumer.inflight import InFlight
from helper.consumer.metrics import Metrics
from helper.consumer.parked import ParkedLaunches
from helper.consumer.rollout_expiry import ExpiredRollouts
from helper.deploys.fleet_hold import HoldError

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(self, routed_groups: Mapping[str, object], hold_groups: tuple[str, ...], autoscaling: AutoScaling,
                 inflight: InFlight, metrics: Metrics, breakers: SiteBreakers | None, parked: ParkedLaunches | None,
                 accept: Callable[[LifecycleAction, None], None],
                 rollouts: ExpiredRollouts | None = None) -> None:
        self.routed_groups = sorted(routed_groups)
        self.hold_groups = list(hold_groups)
        self.autoscaling = autoscaling
        self.inflight = inflight
        self.metrics = metrics
        self.breakers = breakers
        self.parked = parked
        self.accept = accept  # the consumer's: a reconciled action goes where a message's would
        self._waiting_seen: dict[tuple[str, str], int] = {}
        self.rollouts = rollouts

    def run(self, passes_needed: int = 2) -> None:
        self.release_expired_holds()
        self.reconcile(passes_needed)
        self.check_breakers()
        self.restore_expired_rollouts()  # last: launches waiting in Pending:Wait come first

    def reconcile(self, passes_needed: int = 2) -> None:
        try:
            waiting = self.autoscaling.waiting_instances(self.routed_groups)
        except (Throttled, AutoScalingError) as exc:
            self.metrics.aws_errors.labels("DescribeAutoScalingGroups").inc()
            log.warning("event=reconcile_failed error=%r", str(exc))
            return
        seen: dict[tuple[str, str], int] = {}
        for w in waiting:
            key = (w.group, w.instance_id)
            if self.inflight.covers(reconciled_action(w)):
                continue
            seen[key] = self._waiting_seen.get(key, 0) + 1
            if seen[key] >= passes_needed:
                log.warning("event=reconciled group=%s instance=%s state=%s", w.group, w.instance_id, w.state)
                self.accept(reconciled_action(w), None)
                del seen[key]
        self._waiting_seen = seen

    def check_breakers(self) -> None:
        """Read each site's breaker (the parked actions' own check is in helper/consumer/parked.py)."""
        if self.breakers is None:
            return
        for site in self.breakers.sites:
            self.breakers.state(site, held=self.parked.count(site) if self.parked else 0)

    def restore_expired_rollouts(self) -> None:
        """Hosts a dead rollout left out, back in once its record expired (consumer/rollout_expiry.py)."""
        if self.rollouts is not None:
            self.metrics.rollout_expired_restores.inc(len(self.rollouts.restore()))

    def release_expired_holds(self) -> None:
        """A frozen group is bad, but not worth stopping the deploys of new instances for: a
        failure is logged and counted, and the next pass tries again."""
        try:
            released = self.autoscaling.release_expired_holds(self.hold_groups)
        except HoldError as exc:
            self.metrics.aws_errors.labels("ResumeProcesses").inc()
            log.warning("event=hold_release_failed error=%r", str(exc))
            return
        self.metrics.hold_expired_releases.inc(len(released))
