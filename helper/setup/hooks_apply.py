"""The setup seam: the AWS calls `hooks install/remove` and `doctor` make, and nothing else.

`observe()` reads the state helper/setup/hooks.py plans against; `apply()` performs a plan's
changes through the APPLY table. Every botocore error becomes one HelperError naming the
resource, so the CLI prints one line.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable

from helper import PROG
from helper.aws.errors import AwsError, error_code, error_message, explain, translated
from helper.aws.names import AUTOSCALING_NAMES_PER_CALL as GROUPS_PER_DESCRIBE
from helper.errors import ConfigError, HelperError
from helper.settings import SetupSettings
from helper.setup.hooks import (
    MANAGED_TAG_KEY,
    MANAGED_TAG_VALUE,
    Change,
    Desired,
    Observed,
    ObservedRole,
    desired,
    is_managed,
    plan_install,
    plan_remove,
)

log = logging.getLogger(__name__)

# IAM is eventually consistent: AWS refuses a hook whose brand-new role it cannot assume yet
# ("Unable to publish test message"). Seconds, usually; give it half a minute.
ROLE_PROPAGATION_ATTEMPTS = 10
ROLE_PROPAGATION_WAIT_S = 3.0
MISSING_CODES = {"NoSuchEntity", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}



def _missing(exc: Exception) -> bool:
    return error_code(exc) in MISSING_CODES


class SetupApi:
    def __init__(self, sts, sqs, iam, autoscaling, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sts, self._sqs, self._iam, self._autoscaling = (translated(c) for c in (sts, sqs, iam, autoscaling))
        self._sleep = sleep
        self._role_created = False

    @classmethod
    def from_settings(cls, settings: SetupSettings, clients_factory=None) -> "SetupApi":
        from helper.aws.clients import AccessKey, AwsClients

        config = settings.config
        region = config.lifecycle.region if config.lifecycle else config.sites[0].region
        key = AccessKey(region=region, endpoint_url=settings.endpoint_url,
                        credentials=settings.config.credentials, profile=settings.config.profile)
        clients = (clients_factory or AwsClients)(key)
        return cls(clients.client("sts"), clients.client("sqs"), clients.client("iam"), clients.autoscaling)

    def _call(self, what: str, fn, **kwargs):
        try:
            return fn(**kwargs)
        except AwsError as exc:
            raise HelperError(f"{what}: {explain(exc)}") from exc

    # --- observe ---------------------------------------------------------------------------

    def identity(self) -> dict:
        return self._call("AWS credentials (sts get-caller-identity)", self._sts.get_caller_identity)

    def account(self) -> str:
        return self.identity()["Account"]

    def _queue(self, name: str, with_tags: bool = True) -> tuple[dict[str, str] | None, bool]:
        """(attributes, whether it carries our tag); (None, False) when there is no such queue."""
        try:
            url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
            attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            tags = self._sqs.list_queue_tags(QueueUrl=url).get("Tags", {}) if with_tags else {}
        except AwsError as exc:
            if _missing(exc):
                return None, False
            raise HelperError(f"queue {name}: {explain(exc)}") from exc
        return attributes, is_managed(tags)

    def _role(self, name: str) -> ObservedRole | None:
        try:
            role = self._iam.get_role(RoleName=name)["Role"]
            names = self._iam.list_role_policies(RoleName=name)["PolicyNames"]
            policies = {p: self._iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"] for p in names}
        except AwsError as exc:
            if _missing(exc):
                return None
            raise HelperError(f"role {name}: {explain(exc)}") from exc
        tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}  # GetRole returns them
        return ObservedRole(trust=role.get("AssumeRolePolicyDocument") or {}, policies=policies,
                            managed=is_managed(tags))

    def groups(self, names: list[str]) -> frozenset[str]:
        found = set()
        for start in range(0, len(names), GROUPS_PER_DESCRIBE):
            pages = self._autoscaling.get_paginator("describe_auto_scaling_groups").paginate(
                AutoScalingGroupNames=names[start:start + GROUPS_PER_DESCRIBE])
            try:
                found.update(g["AutoScalingGroupName"] for page in pages for g in page["AutoScalingGroups"])
            except AwsError as exc:
                raise HelperError(f"describe groups: {explain(exc)}") from exc
        return frozenset(found)

    def breakers(self, lc):
        """Each site's breaker and its held instances (helper/setup/breaker_cmd.py), for `doctor`."""
        from helper.breaker.state import BreakerStore
        from helper.consumer.autoscaling import AutoScaling
        from helper.setup import breaker_cmd

        return breaker_cmd.read(BreakerStore(self._autoscaling), AutoScaling(self._autoscaling), lc)

    def holds(self, groups: list[str]) -> dict:
        """Group -> its fleet-hold view (helper/deploys/fleet_hold.py), for `doctor`."""
        from helper.deploys.fleet_hold import FleetHold

        return FleetHold(self._autoscaling).describe(groups)

    def observe(self, want: Desired, with_role: bool = True) -> Observed:
        """`with_role` False: doctor checks what hooks do, not the role (needs no IAM read access)."""
        groups = self.groups(sorted({h.group for h in want.hooks}))
        hooks = {g: tuple(self._call(f"describe hooks of {g}", self._autoscaling.describe_lifecycle_hooks,
                                     AutoScalingGroupName=g)["LifecycleHooks"]) for g in sorted(groups)}
        queue, queue_managed = self._queue(want.queue)
        dlq, dlq_managed = self._queue(want.dlq)
        target_exists = None
        redrive = json.loads((queue or {}).get("RedrivePolicy") or "{}").get("deadLetterTargetArn")
        if redrive and redrive.rsplit(":", 1)[-1] != want.dlq:  # someone else's queue: only whether it exists
            target_exists = self._queue(redrive.rsplit(":", 1)[-1], with_tags=False)[0] is not None
        managed = frozenset(n for n, ours in ((want.queue, queue_managed), (want.dlq, dlq_managed)) if ours)
        return Observed(groups=groups, hooks=hooks, queue=queue, dlq=dlq,
                        role=self._role(want.role) if with_role else None, redrive_target_exists=target_exists,
                        managed_queues=managed)

    # --- apply -----------------------------------------------------------------------------

    def apply(self, changes: list[Change]) -> None:
        for change in changes:
            log.info("event=setup_change action=%s subject=%r", change.action, change.subject)
            try:
                APPLY[change.action](self, **change.params)
            except AwsError as exc:
                raise HelperError(f"{change.line(dry_run=False)}: {explain(exc)}") from exc

    def _create_role(self, name: str, trust: dict, policy_name: str, policy: dict) -> None:
        self._iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                              Description=f"Lets Auto Scaling lifecycle hooks notify {PROG}'s queue",
                              Tags=[{"Key": MANAGED_TAG_KEY, "Value": MANAGED_TAG_VALUE}])
        self._iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(policy))
        self._role_created = True

    def _update_role_trust(self, name: str, trust: dict) -> None:
        self._iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))

    def _update_role_policy(self, name: str, policy_name: str, policy: dict) -> None:
        self._iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(policy))

    def _delete_role(self, name: str) -> None:
        for policy in self._iam.list_role_policies(RoleName=name)["PolicyNames"]:
            self._iam.delete_role_policy(RoleName=name, PolicyName=policy)
        self._iam.delete_role(RoleName=name)

    def _create_queue(self, name: str, attributes: dict[str, str]) -> None:
        self._sqs.create_queue(QueueName=name, Attributes=attributes, tags={MANAGED_TAG_KEY: MANAGED_TAG_VALUE})

    def _update_queue(self, name: str, attributes: dict[str, str]) -> None:
        url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        self._sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)

    def _delete_queue(self, name: str) -> None:
        self._sqs.delete_queue(QueueUrl=self._sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def _put_hook(self, **hook) -> None:
        for attempt in range(1, ROLE_PROPAGATION_ATTEMPTS + 1):
            try:
                self._autoscaling.put_lifecycle_hook(**hook)
                return
            except AwsError as exc:
                unpublished = "Unable to publish test message" in error_message(exc)
                if not (self._role_created and unpublished) or attempt == ROLE_PROPAGATION_ATTEMPTS:
                    raise
                log.info("event=role_propagating attempt=%d", attempt)
                self._sleep(ROLE_PROPAGATION_WAIT_S)

    def _delete_hook(self, **hook) -> None:
        self._autoscaling.delete_lifecycle_hook(**hook)


APPLY = {
    "create_role": SetupApi._create_role,
    "update_role_trust": SetupApi._update_role_trust,
    "update_role_policy": SetupApi._update_role_policy,
    "delete_role": SetupApi._delete_role,
    "create_queue": SetupApi._create_queue,
    "update_queue": SetupApi._update_queue,
    "delete_queue": SetupApi._delete_queue,
    "create_hook": SetupApi._put_hook,
    "update_hook": SetupApi._put_hook,
    "delete_hook": SetupApi._delete_hook,
}


def run(action: str, settings: SetupSettings, api: SetupApi, force: bool = False) -> list[str]:
    """Plan `action` ("install" or "remove"), apply it unless dry-run; the lines to print.
    `force`: remove deletes queues that still hold messages."""
    if settings.config.lifecycle is None:
        raise ConfigError(f"{settings.config.path}: no lifecycle: section; hooks are set up from it")
    want = desired(settings.config.lifecycle, api.account())
    seen = api.observe(want)
    changes = plan_install(want, seen) if action == "install" else plan_remove(want, seen, force=force)
    lines = [c.line(settings.dry_run) for c in changes]
    if not changes:
        things = f"queue {want.queue}, dead-letter queue {want.dlq}, role {want.role}, {len(want.hooks)} hook(s)"
        done = f"{things} already as configured" if action == "install" else f"none of {things} exists"
        return [f"no changes: {done}"]
    if not settings.dry_run:
        api.apply(changes)
    verb = "would make" if settings.dry_run else "made"
    return lines + [f"{verb} {len(changes)} change(s)"]
