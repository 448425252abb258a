"""Auto Scaling lifecycle hooks for moto 5.2.5, patched into its in-process backend.

Emulated (see ../shared/aws-lifecycle-reference.md for AWS's behaviour):
- PutLifecycleHook keeps NotificationTargetARN, RoleARN, NotificationMetadata, HeartbeatTimeout
  (30-7200, default 3600), DefaultResult (default ABANDON); DescribeLifecycleHooks shows them,
  with GlobalTimeout = min(100 x HeartbeatTimeout, 172800). With a target it sends the
  autoscaling:TEST_NOTIFICATION, and fails with ValidationError when the target does not exist.
- Scale-out of a group with a launching hook (SetDesiredCapacity, UpdateAutoScalingGroup, the
  replacement after ABANDON or after an EC2 TerminateInstances): Pending:Wait, no load balancer,
  one notification. CONTINUE -> InService, then registered with classic ELBs and target groups;
  ABANDON -> terminated, deregistered, replaced (the replacement waits and notifies in turn).
- Scale-in with a terminating hook: Terminating:Wait (already out of the load balancers, as AWS
  deregisters before the hook), then terminated whatever the result.
- CompleteLifecycleAction / RecordLifecycleActionHeartbeat by token or instance id; an unknown or
  finished action is ValidationError "No active Lifecycle Action found with token <t>" /
  "... with instance ID <id>". Heartbeat and global timeouts apply DefaultResult, on a sandbox
  clock that can run fast (install(time_scale), set_time_scale), from a
  background ticker, so replacements notify without any client call.
- Delivery shapes for queue targets: "direct" (plain JSON), "sns" (SNS Notification envelope,
  synthetic TopicArn and signature), "eventbridge" (EventBridge event). SNS topic targets get
  the plain message published to the topic (moto's SNS then wraps it for its subscribers).
- Faults (faults.py): Throttling for chosen actions; duplicate SQS delivery.
- State: every switch and pending action lives in one SandboxState (state.py), made by install().
- Suspended Terminate (a fleet hold, helper/deploys/fleet_hold.py): a scale-in keeps every InService
  instance (instances in Pending:Wait may still go); when Terminate is resumed the group converges
  to its desired capacity. moto itself stores suspended processes but never reads them.
- Target groups: instances enter only when InService and leave when terminated; a terminated
  target no longer reports healthy, whoever terminated it.

Not emulated: warm pools (no Warmed:* states or WarmPool origin/destination); several hooks for
the same transition (the first one governs); hooks on TerminateInstanceInAutoScalingGroup,
instance refresh, health replacement or DeleteAutoScalingGroup (these terminate at once);
Pending:Proceed / Terminating:Proceed as visible states; the role's permissions; FIFO-queue
rejection; slowed launches after repeated failures; the termination policy (waiting-to-launch
instances go first, then the oldest); mixed-instances weighting in groups that have hooks;
notification times are real wall-clock time, not the fast clock. EventBridge delivery is
to the hook's own target, not through rules.
"""

from __future__ import annotations

import uuid
from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.core.responses import EmptyResult

from helper.sandbox.aws import load_balancers, notify, scaling, state
from helper.sandbox.aws.actions import PendingAction, global_timeout_s
from helper.sandbox.aws.notify import LAUNCHING, TERMINATING
from helper.sandbox.aws.scaling import ABANDON, CONTINUE
from helper.sandbox.aws.state import SandboxState

# AWS's accepted range and default for HeartbeatTimeout, in seconds.
HEARTBEAT_TIMEOUT_MIN_S, HEARTBEAT_TIMEOUT_MAX_S = 30, 7200
DEFAULT_HEARTBEAT_TIMEOUT_S = 3600
# What AWS answers a throttled query-protocol call with (botocore's model lists no such shape,
# so moto's serializer would warn on every one).
THROTTLING_XML = (
    '<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type>'
    "<Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>{}</RequestId></ErrorResponse>"
)

# moto's own methods that the patches below wrap: patch bookkeeping, not sandbox state.
_originals: dict[str, Any] = {}


# ---- public switches -------------------------------------------------------------------------

def set_time_scale(scale: float) -> None:
    """Run the sandbox clock `scale` times faster than real time (60.0: a 30 s timeout takes 0.5 s)."""
    state.current().clock.set_scale(scale)


def time_scale() -> float:
    return state.current().clock.scale


def set_delivery_shape(shape: str) -> None:
    """"direct" (default), "sns" or "eventbridge": how notifications reach a queue target."""
    state.current().set_delivery_shape(shape)


def delivery_shape() -> str:
    return state.current().delivery_shape


def _expire_due(sandbox: SandboxState) -> None:
    with sandbox.lock:
        scaling.expire_due(sandbox)


# ---- AutoScalingResponse handlers (moto dispatches by method name) ----------------------------

def _put_lifecycle_hook(self: Any) -> EmptyResult:
    backend = self.autoscaling_backend
    group_name = self._get_param("AutoScalingGroupName")
    name = self._get_param("LifecycleHookName")
    sandbox = state.current()
    with sandbox.lock:
        group = backend.autoscaling_groups.get(group_name)
        if group is None:
            raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup {group_name} not found")
        old = backend.lifecycle_hooks.get(f"{group_name}_{name}")
        transition = self._get_param("LifecycleTransition") or getattr(old, "lifecycle_transition", None)
        if transition not in (LAUNCHING, TERMINATING):
            raise ValidationError(f"Invalid Lifecycle Transition: {transition}")
        timeout_s = self._get_int_param("HeartbeatTimeout", getattr(old, "heartbeat_timeout", None))
        timeout_s = DEFAULT_HEARTBEAT_TIMEOUT_S if timeout_s is None else timeout_s
        if not HEARTBEAT_TIMEOUT_MIN_S <= timeout_s <= HEARTBEAT_TIMEOUT_MAX_S:
            raise ValidationError(
                f"Heartbeat timeout {timeout_s} is out of range: it must be between "
                f"{HEARTBEAT_TIMEOUT_MIN_S} and {HEARTBEAT_TIMEOUT_MAX_S} seconds"
            )
        result = self._get_param("DefaultResult") or getattr(old, "default_result", ABANDON)
        if result not in (CONTINUE, ABANDON):
            raise ValidationError(f"Invalid DefaultResult: {result}; expected CONTINUE or ABANDON")
        target = self._get_param("NotificationTargetARN", getattr(old, "notification_target_arn", None))
        role = self._get_param("RoleARN", getattr(old, "role_arn", None))
        metadata = self._get_param("NotificationMetadata", getattr(old, "notification_metadata", None))

        hook = backend.create_lifecycle_hook(name, group_name, transition, timeout_s, result)
        hook.notification_target_arn = target or None
        hook.role_arn = role
        hook.notification_metadata = metadata
        hook.global_timeout = global_timeout_s(timeout_s)
        if target:
            test = notify.test_message(backend.account_id, group.name, group.arn, notify.now())
            try:
                scaling.send(sandbox, hook, test, group)
            except notify.TargetNotFound:
                # AWS refuses a hook whose test message cannot be published.
                if old is None:
                    backend.lifecycle_hooks.pop(f"{group_name}_{name}", None)
                else:
                    backend.lifecycle_hooks[f"{group_name}_{name}"] = old
                raise ValidationError(
                    f"Unable to publish test message to notification target {target} using IAM role {role}. "
                    "Please check your target and role configuration and try to put lifecycle hook again."
                ) from None
    return EmptyResult()


def _find_action(self: Any, sandbox: SandboxState) -> PendingAction:
    token = self._get_param("LifecycleActionToken")
    instance_id = self._get_param("InstanceId")
    group_name = self._get_param("AutoScalingGroupName")
    hook_name = self._get_param("LifecycleHookName")
    if token:
        action = sandbox.book.by_token(token)
        if action is not None and (action.group_name, action.hook_name) != (group_name, hook_name):
            action = None
        missing = f"No active Lifecycle Action found with token {token}"
    elif instance_id:
        action = sandbox.book.by_instance(instance_id, group_name, hook_name)
        missing = f"No active Lifecycle Action found with instance ID {instance_id}"
    else:
        raise ValidationError("Either LifecycleActionToken or InstanceId must be specified")
    if action is not None and scaling.find_state(action)[0] is None:
        sandbox.book.finish(action)  # the instance left by another road; its action died with it
        action = None
    if action is None:
        raise ValidationError(missing)
    return action


def _complete_lifecycle_action(self: Any) -> EmptyResult:
    result = self._get_param("LifecycleActionResult")
    if result not in (CONTINUE, ABANDON):
        raise ValidationError(f"Invalid LifecycleActionResult: {result}; expected CONTINUE or ABANDON")
    sandbox = state.current()
    with sandbox.lock:
        action = _find_action(self, sandbox)
        sandbox.book.finish(action)
        scaling.apply_result(action, result)
    return EmptyResult()


def _record_lifecycle_action_heartbeat(self: Any) -> EmptyResult:
    sandbox = state.current()
    with sandbox.lock:
        sandbox.book.heartbeat(_find_action(self, sandbox))
    return EmptyResult()


def _call_action(self: Any) -> Any:
    if state.current().faults.should_throttle(self._get_action()):
        request_id = str(uuid.uuid4())
        return 400, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, THROTTLING_XML.format(request_id)
    return _originals["call_action"](self)


# ---- model patches ---------------------------------------------------------------------------

def _set_desired_capacity(group: Any, new_capacity: int | None) -> None:
    sandbox = state.current()
    with sandbox.lock:
        # moto's own path removes instances whatever is suspended; ours honours a held Terminate.
        if not scaling.has_hooks(group) and not scaling.terminate_suspended(group):
            return _originals["set_desired_capacity"](group, new_capacity)
        scaling.reconcile(sandbox, group, new_capacity)


def _resume_processes(backend: Any, group_name: str, scaling_processes: list[str]) -> None:
    """After a resumed Terminate, the group converges to its desired capacity, as AWS's does."""
    sandbox = state.current()
    with sandbox.lock:
        _originals["resume_processes"](backend, group_name, scaling_processes)
        group = backend.autoscaling_groups.get(group_name)
        if group is not None and (not scaling_processes or "Terminate" in scaling_processes):
            group.set_desired_capacity(group.desired_capacity)


def _replace_instances(group: Any, count_needed: int, propagated_tags: dict[str, str]) -> None:
    sandbox = state.current()
    with sandbox.lock:
        before = {s.instance.id for s in group.instance_states}
        _originals["replace_autoscaling_group_instances"](group, count_needed, propagated_tags)
        scaling.on_launched(sandbox, group, [s for s in group.instance_states if s.instance.id not in before])


def _update_attached_target_groups(backend: Any, group_name: str) -> None:
    load_balancers.update_attached_target_groups(backend, group_name)


def _delete_auto_scaling_group(backend: Any, group_name: str) -> None:
    sandbox = state.current()
    with sandbox.lock:
        group = backend.autoscaling_groups.get(group_name)
        if group is not None:
            group._sandbox_deleting = True  # hooks no longer hold anything up
            sandbox.book.drop_group(group_name)
            for key in [k for k, h in backend.lifecycle_hooks.items() if h.auto_scaling_group_name == group_name]:
                del backend.lifecycle_hooks[key]  # AWS deletes a group's hooks with it
            for member in list(group.instance_states):
                scaling.terminate(group, member)
        _originals["delete_auto_scaling_group"](backend, group_name)


def _patch(owner: Any, name: str, replacement: Any) -> None:
    _originals[name] = getattr(owner, name)
    setattr(owner, name, replacement)


def install(time_scale: float = 1.0) -> SandboxState:
    """Patch moto (once), make the sandbox's state with its clock `time_scale` times faster than
    real time (also what reset() returns to), and start the timeout ticker."""
    from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup
    from moto.autoscaling.responses import AutoScalingResponse

    if not _originals:
        _patch(AutoScalingResponse, "call_action", _call_action)
        AutoScalingResponse.put_lifecycle_hook = _put_lifecycle_hook
        AutoScalingResponse.complete_lifecycle_action = _complete_lifecycle_action
        AutoScalingResponse.record_lifecycle_action_heartbeat = _record_lifecycle_action_heartbeat
        _patch(FakeAutoScalingGroup, "set_desired_capacity", _set_desired_capacity)
        _patch(FakeAutoScalingGroup, "replace_autoscaling_group_instances", _replace_instances)
        _patch(AutoScalingBackend, "update_attached_target_groups", _update_attached_target_groups)
        _patch(AutoScalingBackend, "delete_auto_scaling_group", _delete_auto_scaling_group)
        _patch(AutoScalingBackend, "resume_processes", _resume_processes)
        load_balancers.install()
    sandbox = state.create(time_scale, _expire_due)
    sandbox.ticker.start()
    return sandbox


def reset_switches() -> None:
    """No faults, the default delivery shape and the install-time clock scale."""
    state.current().reset_switches()


def reset() -> None:
    """Forget pending actions and restore the default switches."""
    state.current().reset()


def shutdown() -> None:
    """Stop the ticker thread; install() starts a new one."""
    state.current().ticker.stop()
