"""The consumer's pass over rollout records whose rollout died (issue 21): put their hosts back.

A rollout killed mid-batch (its Jenkins agent lost, a SIGKILL) leaves hosts deregistered, each
with a record saying where it was and until when (helper/deploys/rollout_record.py). Once that
time passes, this pass registers each host that is not `failed` back where its record says, but
only into load balancers the site's own Auto Scaling groups are attached to: a record is a tag
anyone with ec2:CreateTags can write, and the groups are the source of truth for what serves
the site. A host whose record names anything else stays out, logged, for `rollout abort`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable, Mapping, Sequence

from helper.consumer.autoscaling import AutoScaling, AutoScalingError, Throttled
from helper.deploys.load_balancers import LoadBalancerError, LoadBalancers
from helper.deploys.rollout import abort
from helper.deploys.rollout_record import RecordError, RolloutRecords

log = logging.getLogger(__name__)


class ExpiredRollouts:
    def __init__(self, records: RolloutRecords, lbs: LoadBalancers, autoscaling: AutoScaling,
                 site_groups: Mapping[str, Sequence[str]],
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        """`site_groups`: each routed site's groups (LifecycleConfig.groups_of)."""
        self.records, self.lbs, self.autoscaling, self.now = records, lbs, autoscaling, now
        self.site_groups = {site: list(groups) for site, groups in site_groups.items()}

    def restore(self) -> list[str]:
        """Every host put back in this pass; a failure is logged and the next pass tries again."""
        restored: list[str] = []
        for site, groups in sorted(self.site_groups.items()):
            try:
                serving = self.autoscaling.attached_load_balancers(groups)
                back, _ = abort(self.records, self.lbs, site, serving=serving, expired_at=self.now())
            except (LoadBalancerError, RecordError, Throttled, AutoScalingError) as exc:  # upkeep never stops consuming
                log.warning("event=rollout_restore_failed site=%s error=%r", site, str(exc))
                continue
            for instance_id in back:
                log.warning("event=rollout_expired_restored site=%s instance=%s", site, instance_id)
            restored += back
        return restored
