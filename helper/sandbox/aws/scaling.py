"""How a group with lifecycle hooks scales in the sandbox.

New instances of a group with a launching hook wait in Pending:Wait, out of every load
balancer, until their action completes; instances chosen by a scale-in wait in
Terminating:Wait when there is a terminating hook. Results are applied as AWS applies them:
launch CONTINUE -> InService and registered; launch ABANDON -> terminated and replaced;
terminate (either result) -> terminated. Callers hold the state's lock and pass the state in.
"""

from __future__ import annotations

from typing import Any

from helper.sandbox.aws import load_balancers, notify
from helper.sandbox.aws.actions import PendingAction
from helper.sandbox.aws.notify import LAUNCHING, TERMINATING
from helper.sandbox.aws.state import SandboxState

CONTINUE, ABANDON = "CONTINUE", "ABANDON"
WAIT_STATE = {LAUNCHING: "Pending:Wait", TERMINATING: "Terminating:Wait"}
WARMED = "Warmed:"  # the prefix of a warm-pool instance's states (move_to_warm_pool)
# States that count towards desired capacity: an instance waiting to launch already fills a slot.
COUNTED_STATES = {"InService", "Pending", "Pending:Wait", "Pending:Proceed"}


def _backend_has(group: Any) -> bool:
    return group.autoscaling_backend.autoscaling_groups.get(group.name) is group


def hooks_for(group: Any, transition: str) -> list[Any]:
    """The group's hooks for a transition; none while the group is being created or deleted."""
    if not _backend_has(group) or getattr(group, "_sandbox_deleting", False):
        return []
    return [
        hook
        for hook in group.autoscaling_backend.lifecycle_hooks.values()
        if hook.auto_scaling_group_name == group.name and hook.lifecycle_transition == transition
    ]


def has_hooks(group: Any) -> bool:
    return bool(hooks_for(group, LAUNCHING) or hooks_for(group, TERMINATING))


def send(sandbox: SandboxState, hook: Any, message: dict, group: Any) -> None:
    """Deliver one message to the hook's target in the current shape; raises TargetNotFound."""
    target = hook.notification_target_arn
    if not target:
        return
    backend = group.autoscaling_backend
    # An SNS topic wraps the message itself, so only a queue target takes the chosen shape.
    shape = notify.DIRECT if target.split(":")[2] == "sns" else sandbox.delivery_shape
    body = notify.render(
        message, shape, region=backend.region_name, group_arn=group.arn, moment=notify.now()
    )
    if body is not None:
        notify.deliver(target, body, backend.account_id, backend.region_name, sandbox.faults.delivery_copies())


def start_action(sandbox: SandboxState, group: Any, state: Any, hook: Any, origin: str | None = None) -> PendingAction:
    backend = group.autoscaling_backend
    state.lifecycle_state = WAIT_STATE[hook.lifecycle_transition]
    action = sandbox.book.start(
        instance_id=state.instance.id,
        group_name=group.name,
        hook_name=hook.name,
        transition=hook.lifecycle_transition,
        default_result=hook.default_result,
        heartbeat_timeout_s=hook.heartbeat_timeout,
        account_id=backend.account_id,
        region=backend.region_name,
    )
    message = notify.lifecycle_message(
        action, getattr(hook, "notification_metadata", None), notify.now()
    )
    if origin is not None:  # a launch out of a warm pool says where it came from
        message["Origin"] = origin
    try:
        send(sandbox, hook, message, group)
    except notify.TargetNotFound:
        pass  # AWS drops a notification whose queue was deleted; the action still times out
    return action


def on_launched(sandbox: SandboxState, group: Any, new_states: list[Any]) -> None:
    """Put freshly launched instances of a hooked group into Pending:Wait."""
    hooks = hooks_for(group, LAUNCHING)
    if not hooks:
        return
    for state in new_states:
        # One action per instance: with several launching hooks the first one governs (see lifecycle.py).
        start_action(sandbox, group, state, hooks[0])


def reconcile(sandbox: SandboxState, group: Any, new_capacity: int | None) -> None:
    """set_desired_capacity for a group with hooks."""
    group.desired_capacity = group.min_size if new_capacity is None else new_capacity
    counted = [s for s in group.instance_states if s.lifecycle_state in COUNTED_STATES]
    delta = (group.desired_capacity or 0) - len(counted)
    if delta > 0:
        group.replace_autoscaling_group_instances(delta, group.get_propagated_tags())
    elif delta < 0:
        scale_in(sandbox, group, -delta)
    refresh_load_balancers(group)


def refresh_load_balancers(group: Any) -> None:
    if _backend_has(group):
        group.autoscaling_backend.update_attached_elbs(group.name)
        load_balancers.update_attached_target_groups(group.autoscaling_backend, group.name)


def terminate_suspended(group: Any) -> bool:
    """A held group (helper/deploys/fleet_hold.py): moto keeps the suspension but never reads it."""
    return "Terminate" in group._suspended_processes


def scale_in(sandbox: SandboxState, group: Any, count: int) -> None:
    # A suspended Terminate keeps every InService host; AWS still removes instances that are
    # waiting to launch (Pending:Wait) and carries out launch ABANDONs.
    keep_in_service = terminate_suspended(group)
    candidates = [
        s for s in group.instance_states if s.lifecycle_state in COUNTED_STATES and not s.protected_from_scale_in
        and not (keep_in_service and s.lifecycle_state == "InService")
    ]
    # Instances still waiting to launch serve no traffic, so they go first; then the oldest.
    candidates.sort(key=lambda s: s.lifecycle_state == "InService")
    terminating_hooks = hooks_for(group, TERMINATING)
    for state in candidates[:count]:
        if state.lifecycle_state == "InService" and terminating_hooks:
            load_balancers.deregister_everywhere(group.autoscaling_backend, group, state.instance.id)
            start_action(sandbox, group, state, terminating_hooks[0])
        else:
            sandbox.book.drop_instance(state.instance.id)
            terminate(group, state)


def terminate(group: Any, state: Any) -> None:
    """Terminate in EC2, leave the group, leave every load balancer."""
    backend = group.autoscaling_backend
    group.instance_states = [s for s in group.instance_states if s is not state]
    backend.ec2_backend.terminate_instances([state.instance.id])
    load_balancers.deregister_everywhere(backend, group, state.instance.id)


def find_state(action: PendingAction) -> tuple[Any, Any] | tuple[None, None]:
    from moto.autoscaling.models import autoscaling_backends

    group = autoscaling_backends[action.account_id][action.region].autoscaling_groups.get(action.group_name)
    if group is None:
        return None, None
    state = next((s for s in group.instance_states if s.instance.id == action.instance_id), None)
    waiting = WAIT_STATE[action.transition]
    if state is None or state.lifecycle_state not in (waiting, WARMED + waiting):
        return None, None
    return group, state


def launch_from_warm_pool(account_id: str, region: str, group_name: str, instance_id: str) -> None:
    """A Warmed:Stopped instance leaves the pool for the group, as AWS does on a scale-out with a warm
    pool: a new action with a new token at Pending:Wait, and a notification with Origin WarmPool and
    Destination AutoScalingGroup. Only CONTINUE then puts it InService and behind its load balancers."""
    from moto.autoscaling.models import autoscaling_backends

    from helper.sandbox.aws import state as sandbox_state

    sandbox = sandbox_state.current()
    with sandbox.lock:
        group = autoscaling_backends[account_id][region].autoscaling_groups[group_name]
        state = next(s for s in group.instance_states if s.instance.id == instance_id)
        if state.lifecycle_state != WARMED + "Stopped":
            raise ValueError(f"{instance_id} is {state.lifecycle_state}, not in the warm pool")
        start_action(sandbox, group, state, hooks_for(group, LAUNCHING)[0], origin="WarmPool")


def move_to_warm_pool(account_id: str, region: str, group_name: str, instance_id: str) -> None:
    """The sandbox's stand-in for a launch into a warm pool (moto has none): an instance waiting
    in Pending:Wait waits in Warmed:Pending:Wait instead, with the same action and token, as AWS
    holds an instance launched into the pool (Origin EC2, Destination WarmPool). CONTINUE then
    leaves it Warmed:Stopped, out of every load balancer."""
    from moto.autoscaling.models import autoscaling_backends

    group = autoscaling_backends[account_id][region].autoscaling_groups[group_name]
    state = next(s for s in group.instance_states if s.instance.id == instance_id)
    if state.lifecycle_state != WAIT_STATE[LAUNCHING]:
        raise ValueError(f"{instance_id} is {state.lifecycle_state}, not {WAIT_STATE[LAUNCHING]}")
    state.lifecycle_state = WARMED + WAIT_STATE[LAUNCHING]


def apply_result(action: PendingAction, result: str) -> None:
    group, state = find_state(action)
    if group is None:
        return  # the instance left some other way (EC2 TerminateInstances, group deleted)
    if action.transition == LAUNCHING and result == CONTINUE and state.lifecycle_state.startswith(WARMED):
        state.lifecycle_state = WARMED + "Stopped"  # into the pool: stopped, no traffic
    elif action.transition == LAUNCHING and result == CONTINUE:
        state.lifecycle_state = "InService"
        refresh_load_balancers(group)
    elif action.transition == LAUNCHING:
        terminate(group, state)
        group.set_desired_capacity(group.desired_capacity)  # launches the replacement
    else:
        terminate(group, state)
        refresh_load_balancers(group)


def expire_due(sandbox: SandboxState) -> None:
    """Apply each timed-out action's DefaultResult; the ticker calls this."""
    for action in sandbox.book.take_expired():
        apply_result(action, action.default_result)
