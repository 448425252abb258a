"""The Auto Scaling seam: complete, heartbeat, read hook timeouts, list waiting instances.

Like lifecycled's AutoscalingClient, cut down to the calls we make, so the rest of the
consumer can be read (and tested) against four methods.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from helper.aws.errors import AwsError, error_code, error_message, explain, translated
from helper.aws.hook_timeouts import MIN_HEARTBEAT_TIMEOUT_S, heartbeat_timeout_s
from helper.aws.names import AUTOSCALING_NAMES_PER_CALL
from helper.aws.results import Result
from helper.consumer.action import LAUNCHING, TERMINATING, LifecycleAction
from helper.errors import HelperError

GROUPS_PER_DESCRIBE = INSTANCES_PER_DESCRIBE = AUTOSCALING_NAMES_PER_CALL
# The state an instance holds while an action waits for us, by (transition, into a warm pool);
# in any other state a message about it is forged or stale. A launch into the warm pool waits
# in Warmed:Pending:Wait and is completed with no build; a launch into the group waits in
# Pending:Wait. A message that says "WarmPool" for an instance in Pending:Wait would otherwise
# complete the real launch, undeployed, with CONTINUE (issue 19 item 1).
WAITING_STATES = {
    (LAUNCHING, False): frozenset({"Pending:Wait"}),
    (LAUNCHING, True): frozenset({"Warmed:Pending:Wait"}),
    # AWS sends Destination "if available": a launch message without one is deployed either way
    # (a build, never a bare CONTINUE), so either state is its own.
    (LAUNCHING, None): frozenset({"Pending:Wait", "Warmed:Pending:Wait"}),
    (TERMINATING, None): frozenset({"Terminating:Wait", "Warmed:Terminating:Wait"}),
}
# Why a message did not check out with Auto Scaling: the `reason` label of
# adh_messages_rejected_total, a fixed set so attacker-chosen messages cannot grow it.
NOT_IN_GROUP, NOT_WAITING, TOKEN_REJECTED, WRONG_HOOK = "not_in_group", "not_waiting", "token_rejected", "wrong_hook"
REJECT_REASONS = (NOT_IN_GROUP, NOT_WAITING, TOKEN_REJECTED, WRONG_HOOK)


class ActionGone(HelperError):
    """AWS has no such action any more: completed, timed out, or the instance is gone.

    Retrying is pointless (the incumbents that retry it loop forever): acknowledge it.
    """


class Throttled(HelperError):
    """Rate exceeded even after botocore's retries: try again later, with back-off."""


class AutoScalingError(HelperError):
    """Any other failure of an Auto Scaling call."""


THROTTLING_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}


def _raise(exc: Exception, what: str) -> None:
    """Sort a failed call into the three kinds the consumer treats differently."""
    code = error_code(exc)
    if code == "ValidationError" and "No active Lifecycle Action" in explain(exc):
        raise ActionGone(f"{what}: {error_message(exc)}") from exc
    if code in THROTTLING_CODES:
        raise Throttled(f"{what}: {explain(exc)}") from exc
    raise AutoScalingError(f"{what}: {explain(exc)}") from exc


@dataclass(frozen=True)
class Seen:
    """An instance as DescribeAutoScalingInstances shows it."""

    group: str
    state: str


def mismatch(action: LifecycleAction, seen: Seen | None) -> str | None:
    """Why Auto Scaling does not hold this instance for this action (a REJECT_REASONS value), or None."""
    if seen is None or seen.group != action.group:
        return NOT_IN_GROUP
    warm = action.into_warm_pool if action.launching and action.destination is not None else None
    if seen.state not in WAITING_STATES.get((action.transition, warm), ()):
        return NOT_WAITING
    return None


@dataclass(frozen=True)
class Waiting:
    group: str
    instance_id: str
    state: str  # "Pending:Wait", "Warmed:Pending:Wait", ...


class AutoScaling:
    def __init__(self, client) -> None:
        self._client = translated(client)
        # group -> its hooks, read once: the hook name (for reconciled actions) and the
        # heartbeat timeout come from here, not from a describe call per heartbeat.
        self._hooks: dict[str, list[dict]] = {}
        self._lock = threading.Lock()

    def release_expired_holds(self, groups: list[str]) -> list:
        """Resume the groups of each fleet hold past its `until` (helper/deploys/fleet_hold.py):
        the hold's own seam, on this client, so the raw client never leaves this object."""
        from helper.deploys.fleet_hold import release_expired

        return release_expired(self._client, groups)

    def _hooks_of(self, group: str) -> list[dict]:
        with self._lock:
            if group in self._hooks:
                return self._hooks[group]
        try:
            hooks = self._client.describe_lifecycle_hooks(AutoScalingGroupName=group)["LifecycleHooks"]
        except AwsError as exc:
            _raise(exc, f"describe hooks of {group}")
        with self._lock:
            self._hooks[group] = hooks
        return hooks

    def _hook(self, action: LifecycleAction) -> dict | None:
        """The action's hook: by name, or for reconciled actions by transition."""
        for hook in self._hooks_of(action.group):
            if (hook["LifecycleHookName"] == action.hook if action.hook
                    else hook["LifecycleTransition"] == action.transition):
                return hook
        return None

    def _target(self, action: LifecycleAction, by_instance: bool = False) -> dict:
        hook = action.hook
        if hook is None:
            found = self._hook(action)
            if found is None:
                raise AutoScalingError(f"group {action.group} has no {action.transition} hook")
            hook = found["LifecycleHookName"]
        target = {"AutoScalingGroupName": action.group, "LifecycleHookName": hook}
        if action.token and not by_instance:
            target["LifecycleActionToken"] = action.token
        else:
            target["InstanceId"] = action.instance_id
        return target

    def complete(self, action: LifecycleAction, result: Result) -> None:
        """Complete the action of the instance we deployed, named by its id, never by token.

        AWS checks that a token is real, not that it belongs to the instance a message names:
        a message that pairs a waiting instance with another instance's genuine token passes
        the heartbeat check. Completing by token would then let that other instance in
        without a deploy; by instance id, CONTINUE reaches only the instance the build served.
        """
        target = self._target(action, by_instance=True)
        try:
            self._client.complete_lifecycle_action(LifecycleActionResult=result, **target)
        except AwsError as exc:
            _raise(exc, f"complete {action.reference()} with {result}")

    def heartbeat(self, action: LifecycleAction, by_instance: bool = False) -> None:
        """By token to ask AWS whether a claim's token is real; by instance id to keep the instance's
        own action alive, whichever token a message paired it with (issue 19 item 4)."""
        target = self._target(action, by_instance=by_instance)
        try:
            self._client.record_lifecycle_action_heartbeat(**target)
        except AwsError as exc:
            _raise(exc, f"heartbeat {action.reference()}")

    def wrong_hook(self, action: LifecycleAction) -> str | None:
        """WRONG_HOOK when the hook a message names is not on its group or serves another transition:
        completion goes by instance id and hook name, so a TERMINATING message naming the launch hook
        would complete the launch. Raises Throttled / AutoScalingError when the hooks cannot be read."""
        if action.hook is None:  # reconciled: the hook is found by its transition
            return None
        hook = self._hook(action)
        return None if hook is not None and hook["LifecycleTransition"] == action.transition else WRONG_HOOK

    def heartbeat_timeout_s(self, action: LifecycleAction) -> int:
        """The hook's HeartbeatTimeout (AWS's default when the hook is not found)."""
        try:
            hook = self._hook(action)
        except (Throttled, AutoScalingError):
            # Heartbeating more often than needed is harmless; too seldom loses the action.
            return MIN_HEARTBEAT_TIMEOUT_S
        return heartbeat_timeout_s(hook or {})

    def default_result(self, action: LifecycleAction) -> Result:
        """The hook's DefaultResult: what AWS applies at its timeout, and what a held action gets
        when the breaker stops holding it. ABANDON (AWS's default) when the hook cannot be read."""
        try:
            hook = self._hook(action)
        except (Throttled, AutoScalingError):
            return Result.ABANDON
        found = (hook or {}).get("DefaultResult")
        return Result.CONTINUE if found == Result.CONTINUE else Result.ABANDON

    def describe_instances(self, instance_ids: list[str]) -> dict[str, Seen]:
        """Group and lifecycle state of each instance Auto Scaling knows; unknown ids are absent."""
        ids = sorted(set(instance_ids))
        seen: dict[str, Seen] = {}  # no ids, no call: without InstanceIds it would list every instance
        for start in range(0, len(ids), INSTANCES_PER_DESCRIBE):
            try:
                pages = self._client.get_paginator("describe_auto_scaling_instances").paginate(
                    InstanceIds=ids[start:start + INSTANCES_PER_DESCRIBE])
                for page in pages:
                    for inst in page["AutoScalingInstances"]:
                        seen[inst["InstanceId"]] = Seen(inst["AutoScalingGroupName"], inst["LifecycleState"])
            except AwsError as exc:
                _raise(exc, "describe instances")
        return seen

    def _groups(self, names: list[str]) -> list[dict]:
        """DescribeAutoScalingGroups of these groups, GROUPS_PER_DESCRIBE names a call."""
        found = []
        for start in range(0, len(names), GROUPS_PER_DESCRIBE):
            try:
                pages = self._client.get_paginator("describe_auto_scaling_groups").paginate(
                    AutoScalingGroupNames=names[start:start + GROUPS_PER_DESCRIBE])
                found += [group for page in pages for group in page["AutoScalingGroups"]]
            except AwsError as exc:
                _raise(exc, "describe groups")
        return found

    def attached_load_balancers(self, groups: list[str]) -> set[str]:
        """The target group ARNs and classic ELB names these groups are attached to: the load
        balancers that serve their site, which a rollout record may name and nothing else may."""
        found: set[str] = set()
        for group in self._groups(groups):
            found |= set(group.get("TargetGroupARNs", [])) | set(group.get("LoadBalancerNames", []))
        return found

    def waiting_instances(self, groups: list[str]) -> list[Waiting]:
        """Instances of these groups held by a launching hook right now."""
        return [Waiting(group["AutoScalingGroupName"], inst["InstanceId"], inst["LifecycleState"])
                for group in self._groups(groups) for inst in group.get("Instances", [])
                if inst["LifecycleState"].endswith("Pending:Wait")]


def reconciled_action(waiting: Waiting) -> LifecycleAction:
    """An action for an instance found waiting without a message: completed by instance id."""
    return LifecycleAction(
        group=waiting.group,
        instance_id=waiting.instance_id,
        transition=LAUNCHING,
        destination="WarmPool" if waiting.state.startswith("Warmed:") else "AutoScalingGroup",
    )
