"""Load balancer membership of Auto Scaling instances, as AWS keeps it.

moto registers every group instance with the group's target groups at once and never takes
a terminated one out; AWS registers an instance only when it enters InService (after a
launching hook's CONTINUE) and deregisters it when it leaves. Classic ELBs are handled by
moto's own update_attached_elbs, which already registers only InService instances.
"""

from __future__ import annotations

from typing import Any

IN_SERVICE = "InService"
# EC2 states in which a target can no longer take traffic.
GONE_EC2_STATES = {"shutting-down", "terminated"}


def update_attached_target_groups(backend: Any, group_name: str) -> None:
    """Replacement for AutoScalingBackend.update_attached_target_groups."""
    from moto.elbv2.exceptions import TargetGroupNotFoundError

    group = backend.autoscaling_groups[group_name]
    in_service = {s.instance.id for s in group.instance_states if s.lifecycle_state == IN_SERVICE}
    members = {s.instance.id for s in group.instance_states}
    for arn in group.target_group_arns:
        try:
            target_group = backend.elbv2_backend.describe_target_groups(
                target_group_arns=[arn], load_balancer_arn=None, names=None
            )[0]
        except TargetGroupNotFoundError:
            continue  # target groups can be deleted before their Auto Scaling group
        to_add = [{"Id": i, "Port": target_group.port} for i in sorted(in_service - set(target_group.targets))]
        if to_add:
            target_group.register(to_add)
        to_remove = [{"Id": i} for i in sorted((members - in_service) & set(target_group.targets))]
        if to_remove:
            target_group.deregister(to_remove)


def deregister_everywhere(backend: Any, group: Any, instance_id: str) -> None:
    """Take one instance out of every classic ELB and target group of its group."""
    from moto.elb.exceptions import LoadBalancerNotFoundError

    for name in group.load_balancer_names:
        try:
            backend.elb_backend.deregister_instances(name, [instance_id], from_autoscaling=True)
        except LoadBalancerNotFoundError:
            continue
        except AttributeError:
            continue  # moto answers a deleted ELB with None here
    for arn in group.target_group_arns:
        target_group = backend.elbv2_backend.target_groups.get(arn)
        if target_group is not None and instance_id in target_group.targets:
            target_group.deregister([{"Id": instance_id}])


def install() -> None:
    """Make target health honest about terminated instances, whoever terminated them, and a
    classic ELB's deregistration remove an instance whoever registered it."""
    from moto.elb.models import ELBBackend
    from moto.elbv2.models import FakeTargetGroup

    if getattr(FakeTargetGroup.health_for, "_sandbox", False):
        return
    deregister_instances = ELBBackend.deregister_instances

    def deregister_everyones(self: Any, load_balancer_name: str, instance_ids: Any,
                             from_autoscaling: bool = False) -> Any:
        # moto keeps the instances Auto Scaling registered in a list of their own, which an API
        # deregistration never touched: a rollout's host stayed InService in a group's ELB.
        instance_ids = list(instance_ids)
        balancer = deregister_instances(self, load_balancer_name, instance_ids, from_autoscaling)
        if not from_autoscaling and balancer is not None:
            balancer.instance_autoscaling_ids = [i for i in balancer.instance_autoscaling_ids if i not in instance_ids]
        return balancer

    ELBBackend.deregister_instances = deregister_everyones  # type: ignore[method-assign]
    original_health_for = FakeTargetGroup.health_for

    def health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
        instance_id = target["Id"]
        if instance_id in self.targets and instance_id.startswith("i-"):
            instance = ec2_backend.get_instance_by_id(instance_id)
            if instance is not None and instance.state in GONE_EC2_STATES:
                # AWS drains and then drops a terminated target; moto kept it "healthy".
                self.deregister_terminated_instances([instance_id])
        return original_health_for(self, target, ec2_backend)

    health_for._sandbox = True  # type: ignore[attr-defined]
    FakeTargetGroup.health_for = health_for  # type: ignore[method-assign]
