"""moto's load balancers, driving a real one: target groups and classic ELBs bound to HAProxy backends.

moto's own target health is fiction (a deregistered target is `unused` at once, nothing ever
drains, a classic ELB reports every instance InService). For a load balancer bound with
`attach(members)` and `Members.bind(key, backend)`, moto still keeps the registrations, and:

- RegisterTargets / RegisterInstancesWithLoadBalancer (also Auto Scaling's own) put the
  instance's HAProxy server in service, at the instance's private IP and the target's port
  (a classic ELB's: its first listener's instance port);
- DeregisterTargets drains it for the group's `deregistration_delay.timeout_seconds` (a classic
  ELB: its connection draining timeout, if enabled), and the target stays listed as `draining`
  until the drain is over; deregistering a target that is not registered succeeds, as on AWS;
- DescribeTargetHealth / DescribeInstanceHealth answer from HAProxy's checks (balancer/members.py).

Keys: a target group's ARN, or `elb/<name>` for a classic ELB. Load balancers not bound keep
moto's answers. `install()` is idempotent; `attach(None)` unbinds everything.
"""

from __future__ import annotations

from typing import Any

from helper.sandbox.balancer.members import REASONS, Members

_members: Members | None = None


def attach(members: Members | None) -> None:
    global _members
    _members = members
    if members is not None:
        install()


def _bound(key: str) -> Members | None:
    return _members if _members is not None and _members.bound(key) else None


def classic_key(name: str) -> str:
    return f"elb/{name}"


def _address(ec2_backend: Any, instance_id: str) -> str:
    instance = ec2_backend.get_instance_by_id(instance_id)
    if instance is None:
        raise ValueError(f"no instance {instance_id} to balance to")
    return instance.private_ip


def _patch_target_groups() -> None:
    from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

    register, deregister, health_for = FakeTargetGroup.register, FakeTargetGroup.deregister, FakeTargetGroup.health_for
    describe, terminated = ELBv2Backend.describe_target_health, FakeTargetGroup.deregister_terminated_instances

    def bound_register(self: Any, targets: list[dict[str, Any]]) -> None:
        register(self, targets)
        if members := _bound(self.arn):
            for target in targets:
                members.register(self.arn, target["Id"], _address(self.ec2_backend, target["Id"]),
                                 int(target.get("Port", self.port)))

    def bound_deregister(self: Any, targets: list[dict[str, Any]]) -> None:
        members = _bound(self.arn)
        if members is None:
            return deregister(self, targets)
        delay_s = float(self.attributes.get("deregistration_delay.timeout_seconds", 300))
        for target in targets:
            members.deregister(self.arn, target["Id"], delay_s)  # stays in self.targets while it drains

    def bound_terminated(self: Any, instance_ids: list[str]) -> None:
        if members := _bound(self.arn):
            for instance in instance_ids:
                members.deregister(self.arn, instance, 0.0)
            members.settle(self.arn)
        terminated(self, instance_ids)

    def bound_describe(self: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> list[Any]:
        group = self.target_groups.get(target_group_arn)
        if group is not None and (members := _bound(group.arn)):
            members.settle(group.arn)
            for instance in members.finished(group.arn):  # ended here or by the ticker, on its own
                if (gone := group.targets.pop(instance, None)) is not None:
                    group.deregistered_targets[instance] = gone
        return describe(self, target_group_arn, targets)

    def bound_health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
        members = _bound(self.arn)
        registered = self.targets.get(target["Id"])
        if members is None or registered is None:
            return health_for(self, target, ec2_backend)
        state = members.health(self.arn, target["Id"])
        if state == "healthy":
            return FakeHealthStatus(target["Id"], registered["Port"], self.health_check_port, "healthy")
        reason, description = REASONS.get(state, ("Target.NotRegistered", "Target is not registered"))
        return FakeHealthStatus(target["Id"], registered["Port"], self.health_check_port, state, reason, description)

    FakeTargetGroup.register, FakeTargetGroup.deregister = bound_register, bound_deregister
    FakeTargetGroup.health_for, FakeTargetGroup.deregister_terminated_instances = bound_health_for, bound_terminated
    ELBv2Backend.describe_target_health = bound_describe


def _patch_classic() -> None:
    from moto.ec2.models import ec2_backends
    from moto.elb.models import ELBBackend

    register, deregister = ELBBackend.register_instances, ELBBackend.deregister_instances
    describe = ELBBackend.describe_instance_health

    def ec2_of(backend: Any) -> Any:
        return ec2_backends[backend.account_id][backend.region_name]

    def bound_register(self: Any, load_balancer_name: str, instance_ids: Any, from_autoscaling: bool = False) -> Any:
        # Registering an instance that is registered changes nothing on AWS; moto listed it twice
        # (and the inventory then named its host twice: `sandbox up --hosts` registers again).
        instance_ids = list(instance_ids)
        known = self.get_load_balancer(load_balancer_name)
        already = set(known.instance_sparse_ids) | set(known.instance_autoscaling_ids)
        balancer = register(self, load_balancer_name, [i for i in instance_ids if i not in already], from_autoscaling)
        key = classic_key(load_balancer_name)
        if members := _bound(key):
            port = int(balancer.listeners[0].instance_port)
            for instance in list(instance_ids):
                members.register(key, instance, _address(ec2_of(self), instance), port)
        return balancer

    def bound_deregister(self: Any, load_balancer_name: str, instance_ids: Any, from_autoscaling: bool = False) -> Any:
        instance_ids = list(instance_ids)
        balancer = deregister(self, load_balancer_name, instance_ids, from_autoscaling)
        key = classic_key(load_balancer_name)
        if members := _bound(key):
            draining = balancer.attributes.get("connection_draining", {})
            delay_s = float(draining.get("timeout", 300)) if draining.get("enabled") else 0.0
            for instance in instance_ids:
                members.deregister(key, instance, delay_s)
            members.settle(key)
        return balancer

    def bound_describe(self: Any, lb_name: str, instances: list[dict[str, str]]) -> list[dict[str, Any]]:
        key = classic_key(lb_name)
        answers = describe(self, lb_name, instances)
        if not (members := _bound(key)):
            return answers
        members.settle(key)
        for answer in answers:
            if answer.get("State") != "InService":
                continue
            if members.health(key, answer["InstanceId"]) != "healthy":
                answer["State"] = "OutOfService"  # moto's responder writes ReasonCode/Description N/A
        return answers

    ELBBackend.register_instances, ELBBackend.deregister_instances = bound_register, bound_deregister
    ELBBackend.describe_instance_health = bound_describe


_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _patch_target_groups()
    _patch_classic()
    _installed = True
