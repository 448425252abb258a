"""Every load balancer that serves a host, and taking it out of and back into each of them.

A host may sit behind several target groups (each on one or more ports) and classic ELBs at
once, whatever the site's own source says: a rollout that deregisters it from only one leaves
it taking traffic from the others while it restarts. So membership is read from every target
group and every classic ELB of the region, and only where the host is registered and not
already on its way out: a host someone else deregistered is never ours to put back.

The seam holds translated clients (helper/aws/errors.py): a failed call raises AwsError.
"""

from __future__ import annotations

from dataclasses import dataclass

from helper.aws.errors import AwsError, translated
from helper.aws.names import EC2_RESOURCES_PER_CALL, chunks

# ELB documents no limit on targets a call; a batch larger than EC2's tag calls take gains nothing.
TARGETS_PER_CALL = EC2_RESOURCES_PER_CALL

# Target states in which a target is still ours to take out: registered and not leaving.
IN_SERVICE_TARGET_STATES = frozenset({"initial", "healthy", "unhealthy", "unavailable"})


class LoadBalancerError(Exception):
    """A load balancer call failed; the rollout stops where it is (its record says what is out)."""


@dataclass(frozen=True, order=True)
class Membership:
    """One registration of a host: in a target group on a port, or in a classic ELB (port None)."""

    kind: str  # "tg" or "elb"
    target: str  # target group ARN, or classic ELB name
    instance_id: str
    port: int | None = None

    def encode(self) -> str:
        return f"{self.kind}|{self.target}|{'' if self.port is None else self.port}"

    @classmethod
    def decode(cls, instance_id: str, text: str) -> Membership | None:
        kind, sep, rest = text.partition("|")
        target, sep2, port = rest.rpartition("|")
        if kind not in ("tg", "elb") or not (sep and sep2 and target) or (port and not port.isdigit()):
            return None
        return cls(kind, target, instance_id, int(port) if port else None)


@dataclass(frozen=True)
class Timing:
    """What a load balancer's settings imply for one batch."""

    kind: str  # "tg" or "elb": a classic ELB shows no draining state, so its timeout is waited out
    drain_s: float  # deregistration delay / connection draining timeout
    health_check: tuple[int, float, float]  # (healthy threshold, interval s, timeout s)


class LoadBalancers:
    def __init__(self, elbv2, elb) -> None:
        self._elbv2 = translated(elbv2)
        self._elb = translated(elb)
        # The region's load balancers as the last memberships() listed them: timing() of the same
        # memberships reads their settings from that list instead of listing every one again.
        self._listed: tuple[list[dict], list[dict]] | None = None

    # --- reading ------------------------------------------------------------------------------

    def _target_groups(self) -> list[dict]:
        try:
            return [tg for page in self._elbv2.get_paginator("describe_target_groups").paginate()
                    for tg in page["TargetGroups"] if tg.get("TargetType", "instance") == "instance"]
        except AwsError as exc:
            raise LoadBalancerError(f"describe target groups: {exc}") from exc

    def _classic(self) -> list[dict]:
        try:
            return [lb for page in self._elb.get_paginator("describe_load_balancers").paginate()
                    for lb in page["LoadBalancerDescriptions"]]
        except AwsError as exc:
            raise LoadBalancerError(f"describe classic load balancers: {exc}") from exc

    def target_states(self, arn: str) -> dict[tuple[str, int], str]:
        """(instance, port) -> state of every target registered in the group."""
        try:
            found = self._elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        except AwsError as exc:
            raise LoadBalancerError(f"describe target health of {arn}: {exc}") from exc
        return {(d["Target"]["Id"], int(d["Target"].get("Port", 0))): d.get("TargetHealth", {}).get("State", "")
                for d in found}

    def instance_states(self, name: str, instance_ids: list[str]) -> dict[str, str]:
        """instance -> InService / OutOfService / Unknown, of the instances registered with a classic ELB."""
        try:
            found = self._elb.describe_instance_health(
                LoadBalancerName=name, Instances=[{"InstanceId": i} for i in instance_ids])["InstanceStates"]
        except AwsError as exc:
            if exc.code == "InvalidInstance":  # one of them is not registered (any more)
                return {}
            raise LoadBalancerError(f"describe instance health of {name}: {exc}") from exc
        return {s["InstanceId"]: s.get("State", "") for s in found}

    def memberships(self, instance_ids: list[str]) -> list[Membership]:
        """Where each host is registered now and not on its way out."""
        wanted = set(instance_ids)
        found = []
        self._listed = (self._target_groups(), self._classic())
        for tg in self._listed[0]:
            for (instance, port), state in self.target_states(tg["TargetGroupArn"]).items():
                if instance in wanted and state in IN_SERVICE_TARGET_STATES:
                    found.append(Membership("tg", tg["TargetGroupArn"], instance, port))
        for lb in self._listed[1]:
            for member in lb.get("Instances", []):
                if member.get("InstanceId") in wanted:
                    found.append(Membership("elb", lb["LoadBalancerName"], member["InstanceId"]))
        return sorted(found)

    def timing(self, memberships: list[Membership]) -> list[Timing]:
        """The drain and health-check settings of each load balancer these memberships name."""
        out = []
        groups = {m.target for m in memberships if m.kind == "tg"}
        target_groups, classic = self._listed or (self._target_groups(), self._classic())
        for tg in target_groups:
            if tg["TargetGroupArn"] not in groups:
                continue
            try:
                attrs = self._elbv2.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]
            except AwsError as exc:
                raise LoadBalancerError(f"describe target group attributes: {exc}") from exc
            delay = next((float(a["Value"]) for a in attrs if a["Key"] == "deregistration_delay.timeout_seconds"), 300.0)
            out.append(Timing("tg", delay, (int(tg.get("HealthyThresholdCount", 5)), float(tg.get("HealthCheckIntervalSeconds", 30)),
                                      float(tg.get("HealthCheckTimeoutSeconds", 5)))))
        names = {m.target for m in memberships if m.kind == "elb"}
        for lb in classic:
            if lb["LoadBalancerName"] not in names:
                continue
            try:
                attrs = self._elb.describe_load_balancer_attributes(
                    LoadBalancerName=lb["LoadBalancerName"])["LoadBalancerAttributes"]
            except AwsError as exc:
                raise LoadBalancerError(f"describe load balancer attributes: {exc}") from exc
            draining = attrs.get("ConnectionDraining", {})
            check = lb.get("HealthCheck", {})
            out.append(Timing("elb", float(draining.get("Timeout", 300)) if draining.get("Enabled") else 0.0,
                              (int(check.get("HealthyThreshold", 10)), float(check.get("Interval", 30)),
                               float(check.get("Timeout", 5)))))
        return out

    # --- changing -----------------------------------------------------------------------------

    def _each(self, memberships: list[Membership], register: bool) -> None:
        """One call per load balancer (and port) for all of `memberships`: a batch of twenty hosts
        behind one target group is one DeregisterTargets, not twenty."""
        grouped: dict[tuple[str, str], list[Membership]] = {}
        for m in memberships:
            grouped.setdefault((m.kind, m.target), []).append(m)
        for (kind, target), members in sorted(grouped.items()):
            for chunk in chunks(members, TARGETS_PER_CALL):
                try:
                    if kind == "tg":
                        targets = [{"Id": m.instance_id, **({"Port": m.port} if m.port else {})} for m in chunk]
                        call = self._elbv2.register_targets if register else self._elbv2.deregister_targets
                        call(TargetGroupArn=target, Targets=targets)
                    else:
                        call = (self._elb.register_instances_with_load_balancer if register
                                else self._elb.deregister_instances_from_load_balancer)
                        call(LoadBalancerName=target, Instances=[{"InstanceId": m.instance_id} for m in chunk])
                except AwsError as exc:
                    verb = "register" if register else "deregister"
                    ids = " ".join(m.instance_id for m in chunk)
                    raise LoadBalancerError(f"{verb} {ids} with {target}: {exc}") from exc

    def deregister(self, memberships: list[Membership]) -> None:
        self._each(memberships, register=False)

    def register(self, memberships: list[Membership]) -> None:
        self._each(memberships, register=True)

    def drained(self, memberships: list[Membership]) -> bool:
        """No target group still drains any of them (a classic ELB shows no draining: timed instead)."""
        for arn in {m.target for m in memberships if m.kind == "tg"}:
            states = self.target_states(arn)
            if any(states.get((m.instance_id, m.port or 0)) == "draining" for m in memberships if m.target == arn):
                return False
        return True

    def healthy(self, memberships: list[Membership]) -> bool:
        """Every load balancer says each of them is healthy (InService for a classic ELB)."""
        return not self.unhealthy(memberships)

    def unhealthy(self, memberships: list[Membership]) -> set[str]:
        """The instances that some load balancer does not call healthy: one describe per load balancer."""
        bad = set()
        for arn in sorted({m.target for m in memberships if m.kind == "tg"}):
            states = self.target_states(arn)
            bad |= {m.instance_id for m in memberships
                    if m.target == arn and states.get((m.instance_id, m.port or 0)) != "healthy"}
        for name in sorted({m.target for m in memberships if m.kind == "elb"}):
            ids = [m.instance_id for m in memberships if m.target == name]
            states = self.instance_states(name, ids)
            bad |= {i for i in ids if states.get(i) != "InService"}
        return bad
