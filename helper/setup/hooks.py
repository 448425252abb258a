"""Operator setup, planned: what the `lifecycle:` section needs in AWS vs what is there.

`hooks install` and `hooks remove` are plan + apply, like Terraform: `desired()` turns the
config into the queue, dead-letter queue, hook role and hooks it needs; `plan_install()` and
`plan_remove()` compare that with an `Observed` snapshot and return a list of `Change`,
without touching AWS. helper/setup/hooks_apply.py observes and applies, behind one narrow seam.

The names come from the config, so they may already belong to someone else: install tags
the role and queues it creates (managed-by=aws-deploy-helper), changes only what carries the
tag, and remove deletes only what carries it, and a queue holding messages only when forced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from helper import PROG
from helper.aws.hook_timeouts import global_timeout_s
from helper.aws.results import Result
from helper.config.lifecycle import LifecycleConfig
from helper.consumer.action import LAUNCHING, TERMINATING
from helper.errors import ConfigError, HelperError

# A message the consumer failed on this often is poison: park it for a human (the
# consumer's own message handling assumes redrive exists; see Consumer.handle).
MAX_RECEIVE_COUNT = 5
# SQS's own default retention; a lifecycle message must outlive its action.
MIN_RETENTION_S = 4 * 24 * 3600
# SQS's maximum. The DLQ gets it so nothing expires before someone looks; AWS counts a
# redriven message's age from its first enqueue, so the DLQ must keep longer than the queue.
MAX_RETENTION_S = 14 * 24 * 3600
# Both results terminate on a terminating hook; CONTINUE lets other terminating hooks still run.
TERMINATE_DEFAULT_RESULT = Result.CONTINUE
ROLE_POLICY_NAME = f"{PROG}-hook-notify"
POLICY_VERSION = "2012-10-17"
# What AWS's managed AutoScalingNotificationAccessRole grants, scoped to our queue.
HOOK_ROLE_ACTIONS = ("sns:Publish", "sqs:GetQueueUrl", "sqs:SendMessage")
# Put on the role and queues install creates: the proof that they are ours to change or delete.
MANAGED_TAG_KEY, MANAGED_TAG_VALUE = "managed-by", PROG
# Messages in a queue, in every state SQS counts (a deleted queue takes them all with it).
MESSAGE_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                  "ApproximateNumberOfMessagesDelayed")


@dataclass(frozen=True)
class HookSpec:
    group: str
    name: str
    transition: str
    heartbeat_timeout_s: int
    default_result: str


@dataclass(frozen=True)
class Desired:
    account: str
    region: str
    queue: str
    role: str
    visibility_timeout_s: int
    retention_s: int
    hooks: tuple[HookSpec, ...]

    @property
    def dlq(self) -> str:
        return f"{self.queue}-dlq"

    def queue_arn(self, name: str | None = None) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name or self.queue}"

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.role}"

    def trust_policy(self) -> dict:
        return {"Version": POLICY_VERSION, "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "autoscaling.amazonaws.com"}, "Action": "sts:AssumeRole"}]}

    def role_policy(self) -> dict:
        return {"Version": POLICY_VERSION, "Statement": [{
            "Effect": "Allow", "Action": list(HOOK_ROLE_ACTIONS), "Resource": self.queue_arn()}]}

    def queue_policy(self) -> dict:
        # Only the hook role may send: a stray producer could otherwise forge actions.
        return {"Version": POLICY_VERSION, "Statement": [{
            "Sid": "HookRoleSends", "Effect": "Allow", "Principal": {"AWS": self.role_arn},
            "Action": "sqs:SendMessage", "Resource": self.queue_arn()}]}

    def queue_attributes(self) -> dict[str, str]:
        redrive = {"deadLetterTargetArn": self.queue_arn(self.dlq), "maxReceiveCount": MAX_RECEIVE_COUNT}
        return {"VisibilityTimeout": str(self.visibility_timeout_s),
                "MessageRetentionPeriod": str(self.retention_s),
                "RedrivePolicy": json.dumps(redrive), "Policy": json.dumps(self.queue_policy())}

    def dlq_attributes(self) -> dict[str, str]:
        return {"MessageRetentionPeriod": str(MAX_RETENTION_S)}


def desired(lc: LifecycleConfig, account: str) -> Desired:
    name = lc.queue_name
    if name.endswith(".fifo"):
        raise ConfigError(f"lifecycle.queue_url: {name} is a FIFO queue; lifecycle hooks can only target "
                          "standard queues")
    if lc.queue_account not in (None, account):
        raise ConfigError(f"lifecycle.queue_url names account {lc.queue_account}, but the AWS credentials "
                          f"are for account {account}")
    hooks = []
    for route in lc.groups.values():
        hooks.append(HookSpec(route.group, lc.hook_name, LAUNCHING, lc.hook_heartbeat_timeout_s,
                              lc.hook_default_result))
        if route.terminate_job:
            hooks.append(HookSpec(route.group, lc.terminate_hook_name, TERMINATING, lc.hook_heartbeat_timeout_s,
                                  TERMINATE_DEFAULT_RESULT))
    return Desired(
        account=account, region=lc.region, queue=name,
        role=lc.hook_role,
        visibility_timeout_s=lc.visibility_timeout_s,
        retention_s=min(MAX_RETENTION_S,
                        max(MIN_RETENTION_S, 2 * global_timeout_s(lc.hook_heartbeat_timeout_s))),
        hooks=tuple(hooks),
    )


def is_managed(tags: dict[str, str]) -> bool:
    return tags.get(MANAGED_TAG_KEY) == MANAGED_TAG_VALUE


@dataclass(frozen=True)
class ObservedRole:
    trust: dict
    policies: dict[str, dict]  # inline policy name -> document
    managed: bool = False  # carries the managed-by tag: install created it


@dataclass(frozen=True)
class Observed:
    """What AWS has now; None means "does not exist"."""

    groups: frozenset[str]
    hooks: dict[str, tuple[dict, ...]]  # group -> its DescribeLifecycleHooks entries
    queue: dict[str, str] | None = None
    dlq: dict[str, str] | None = None
    role: ObservedRole | None = None
    # Whether the queue's redrive target exists, when it is not our `<name>-dlq`.
    redrive_target_exists: bool | None = None
    # Names of the observed queues that carry the managed-by tag.
    managed_queues: frozenset[str] = frozenset()

    def hook(self, group: str, name: str) -> dict | None:
        return next((h for h in self.hooks.get(group, ()) if h["LifecycleHookName"] == name), None)


@dataclass(frozen=True)
class Change:
    action: str  # a key of helper.setup.hooks_apply.APPLY
    subject: str  # "queue hooks", "hook web-asg/deploy-on-launch"
    detail: str
    params: dict = field(default_factory=dict, compare=False)

    def line(self, dry_run: bool) -> str:
        verb = self.action.split("_", 1)[0]
        return f"{'would ' + verb if dry_run else verb} {self.subject}: {self.detail}"


def normalised(document) -> object:
    """Policy documents compare equal however AWS orders or pluralises Action and Resource."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return document
    if isinstance(document, dict):
        return {k: sorted([v] if isinstance(v, str) else v) if k in ("Action", "Resource") else normalised(v)
                for k, v in document.items()}
    if isinstance(document, list):
        return [normalised(v) for v in document]
    return document


def _redrive(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    policy = json.loads(text)
    return policy.get("deadLetterTargetArn", ""), int(policy.get("maxReceiveCount", 0))


# How an observed queue attribute satisfies the desired one: name -> (observed, wanted) -> fits.
ATTRIBUTE_FITS = {
    # Longer is fine: the consumer sets its own visibility on every receive anyway.
    "VisibilityTimeout": lambda seen, want: seen is not None and int(seen) >= int(want),
    "MessageRetentionPeriod": lambda seen, want: seen is not None and int(seen) >= int(want),
    "RedrivePolicy": lambda seen, want: _redrive(seen) == _redrive(want),
    "Policy": lambda seen, want: seen is not None and normalised(seen) == normalised(want),
}


def not_ours(subject: str, adopt: str, rename: str) -> HelperError:
    """One line: the resource, why we leave it alone, and the two ways forward."""
    return HelperError(f"{subject} exists and was not created by {PROG} (no tag "
                       f"{MANAGED_TAG_KEY}={MANAGED_TAG_VALUE}), so it is left alone; to let {PROG} "
                       f"manage it, tag it yourself ({adopt}), or {rename}")


def _queue_not_ours(what: str, name: str) -> HelperError:
    # The dead-letter queue's name follows the queue's, so either way the fix is another queue_url.
    return not_ours(f"{what} {name}", f"aws sqs tag-queue --queue-url <its URL> --tags "
                    f"{MANAGED_TAG_KEY}={MANAGED_TAG_VALUE}", "point lifecycle.queue_url at another name")


def _role_not_ours(name: str) -> HelperError:
    return not_ours(f"role {name}", f"aws iam tag-role --role-name {name} --tags "
                    f"Key={MANAGED_TAG_KEY},Value={MANAGED_TAG_VALUE}", "set lifecycle.hook_role_name to another name")


def message_count(attributes: dict[str, str]) -> int:
    return sum(int(attributes.get(k) or 0) for k in MESSAGE_COUNTS)


def _queue_changes(name: str, what: str, want: dict[str, str], seen: dict[str, str] | None,
                   managed: bool) -> list[Change]:
    if seen is None:
        shown = ", ".join(f"{k}={v}" for k, v in want.items() if k not in ("Policy", "RedrivePolicy"))
        extra = " with redrive to the DLQ and a send policy for the hook role" if "Policy" in want else ""
        return [Change("create_queue", f"{what} {name}", shown + extra, {"name": name, "attributes": want})]
    if seen.get("FifoQueue") == "true":
        raise HelperError(f"{what} {name} is a FIFO queue; lifecycle hooks need a standard queue "
                          "(delete it or point lifecycle.queue_url at another name)")
    wrong = {k: v for k, v in want.items() if not ATTRIBUTE_FITS[k](seen.get(k), v)}
    if not wrong:
        return []
    if not managed:
        raise _queue_not_ours(what, name)
    return [Change("update_queue", f"{what} {name}", "set " + ", ".join(sorted(wrong)),
                   {"name": name, "attributes": wrong})]


def _role_changes(want: Desired, seen: ObservedRole | None) -> list[Change]:
    params = {"name": want.role, "policy_name": ROLE_POLICY_NAME}
    if seen is None:
        return [Change("create_role", f"role {want.role}",
                       "trusts autoscaling.amazonaws.com; may send to the queue",
                       {**params, "trust": want.trust_policy(), "policy": want.role_policy()})]
    changes = []
    if normalised(seen.trust) != normalised(want.trust_policy()):
        changes.append(Change("update_role_trust", f"role {want.role}", "trust autoscaling.amazonaws.com",
                              {"name": want.role, "trust": want.trust_policy()}))
    if normalised(seen.policies.get(ROLE_POLICY_NAME)) != normalised(want.role_policy()):
        changes.append(Change("update_role_policy", f"role {want.role}",
                              f"inline policy {ROLE_POLICY_NAME}: {', '.join(HOOK_ROLE_ACTIONS)} on the queue",
                              {**params, "policy": want.role_policy()}))
    if changes and not seen.managed:
        raise _role_not_ours(want.role)
    return changes


def _foreign_hook(want: Desired, spec: HookSpec, seen: dict | None) -> ConfigError | None:
    """A same-named hook that notifies another target is someone else's: install retargeted it and
    remove deleted it (issue 19 item 18). Hooks carry no tags, so its target says whose it is: a
    hook that notifies our queue feeds our consumer, and its role (another one made by hand, say)
    is brought in line like any other setting. A ConfigError (exit 2): the way out is another
    hook name in the config, and no flag overrides it (remove's --force is about queued messages)."""
    if seen is None:
        return None
    target, role = seen.get("NotificationTargetARN"), seen.get("RoleARN")
    if target == want.queue_arn():
        return None
    return ConfigError(f"hook {spec.group}/{spec.name} exists and notifies {target or 'nothing'} with role "
                       f"{role or 'none'}, not queue {want.queue} with role {want.role}, so it is left alone; "
                       "set lifecycle.hook_name (or terminate_hook_name) to another name, or remove that hook yourself")


def _hook_changes(want: Desired, spec: HookSpec, seen: dict | None) -> list[Change]:
    wanted = {"LifecycleTransition": spec.transition, "NotificationTargetARN": want.queue_arn(),
              "RoleARN": want.role_arn, "HeartbeatTimeout": spec.heartbeat_timeout_s,
              "DefaultResult": spec.default_result}
    params = {"AutoScalingGroupName": spec.group, "LifecycleHookName": spec.name, **wanted}
    subject = f"hook {spec.group}/{spec.name}"
    foreign = _foreign_hook(want, spec, seen)
    if foreign is not None:
        raise foreign
    if seen is None:
        return [Change("create_hook", subject, f"{spec.transition.split(':')[1]} -> queue {want.queue}, "
                       f"heartbeat {spec.heartbeat_timeout_s} s, default {spec.default_result}", params)]
    diffs = [f"{k} {seen.get(k)} -> {v}" for k, v in wanted.items() if seen.get(k) != v]
    return [Change("update_hook", subject, "; ".join(diffs), params)] if diffs else []


def plan_install(want: Desired, seen: Observed) -> list[Change]:
    """Role first (the queue policy names it), DLQ before the queue (redrive names it), hooks last."""
    missing = sorted({h.group for h in want.hooks} - seen.groups)
    if missing:
        raise HelperError(f"Auto Scaling group(s) {', '.join(missing)} not found in {want.region}; "
                          "lifecycle.groups must name existing groups")
    changes = _role_changes(want, seen.role)
    changes += _queue_changes(want.dlq, "dead-letter queue", want.dlq_attributes(), seen.dlq,
                              want.dlq in seen.managed_queues)
    changes += _queue_changes(want.queue, "queue", want.queue_attributes(), seen.queue,
                              want.queue in seen.managed_queues)
    for spec in want.hooks:
        changes += _hook_changes(want, spec, seen.hook(spec.group, spec.name))
    return changes


def _queue_deletion(name: str, what: str, attributes: dict[str, str], managed: bool, force: bool) -> Change:
    if not managed:
        raise _queue_not_ours(what, name)
    held = message_count(attributes)
    if held and not force:
        raise HelperError(f"{what} {name} holds {held} message(s) (lifecycle actions, or ones that failed); "
                          "let the consumer drain it, or pass --force to delete them with the queue")
    return Change("delete_queue", f"{what} {name}", f"and the {held} message(s) in it" if held else "it is empty",
                  {"name": name})


def plan_remove(want: Desired, seen: Observed, force: bool = False) -> list[Change]:
    """The reverse order: nothing may point at what is already gone. Every refusal is raised
    here, before anything is deleted; `force` lets a queue go with its messages."""
    for spec in want.hooks:
        foreign = _foreign_hook(want, spec, seen.hook(spec.group, spec.name))
        if foreign is not None:
            raise foreign
    changes = [Change("delete_hook", f"hook {s.group}/{s.name}", s.transition.split(":")[1],
                      {"AutoScalingGroupName": s.group, "LifecycleHookName": s.name})
               for s in want.hooks if seen.hook(s.group, s.name) is not None]
    for name, what, attrs in ((want.queue, "queue", seen.queue), (want.dlq, "dead-letter queue", seen.dlq)):
        if attrs is not None:
            changes.append(_queue_deletion(name, what, attrs, name in seen.managed_queues, force))
    if seen.role is not None:
        if not seen.role.managed:
            raise _role_not_ours(want.role)
        changes.append(Change("delete_role", f"role {want.role}", "and its inline policies", {"name": want.role}))
    return changes
