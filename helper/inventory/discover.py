"""Ask AWS which instances a site's source knows about, and describe them.

Thin fetch functions, one paginator or call each, like amazon.aws's aws_ec2 plugin:
no filtering policy lives here (see selection.py). Every lookup is by name, DNS name or
ARN, never by position.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from itertools import islice
from typing import Iterable, Iterator

from helper.aws.clients import AwsClients, ModelUse
from helper.aws.errors import AwsError, error_code, error_message
from helper.aws.names import INSTANCE_ID_IN_TEXT_RE, is_instance_id
from helper.config.document import SiteConfig
from helper.errors import DiscoveryError
from helper.inventory.model import LIVE_STATES, Instance, Membership

# DescribeInstances accepts this many ids per request on AWS; one call per 1,000
# instances is also the benchmark's budget.
DESCRIBE_BATCH = 1000
# An instance can vanish between the load balancer answering and DescribeInstances
# (InvalidInstanceID.NotFound names it); drop the missing ids and ask again, a bounded
# number of times so a misbehaving endpoint cannot loop us.
NOT_FOUND_RETRIES = 3

# What EC2 says is checked where it is read: these values end up in ssh configs and
# inventories, where a newline or a space would change their meaning.
# RFC 1035 labels (letters, digits, inner hyphens, 1-63 characters), at most 253 in all.
_DNS_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DNS_NAME_MAX_CHARS = 253

# What discovery uses of each service's model: the calls below, and of DescribeInstances' answer
# what instance_from_ec2 reads. The inventory's clients are built on models cut down to this
# (helper.aws.clients.ModelUse), so botocore skips parsing the other fifty-odd fields of each
# instance (most of our CPU, docs/benchmarks.md) and building 700 EC2 methods. Call another
# operation or read another field here, and add it here too: a test parses both ways.
INVENTORY_MODELS = {
    "ec2": ModelUse(frozenset({"DescribeInstances"}), (
        ("Reservation", frozenset({"Instances"})),
        ("Instance", frozenset({"InstanceId", "PrivateIpAddress", "PublicIpAddress", "PrivateDnsName",
                                "PublicDnsName", "Ipv6Address", "State", "Placement", "Tags", "NetworkInterfaces"})),
        ("InstanceState", frozenset({"Name"})),
        ("Placement", frozenset({"AvailabilityZone"})),
        ("InstanceNetworkInterface", frozenset({"Ipv6Addresses", "Attachment"})),
        ("InstanceNetworkInterfaceAttachment", frozenset({"DeviceIndex"})),
        ("InstanceIpv6Address", frozenset({"Ipv6Address", "IsPrimaryIpv6"})),
    )),
    "elb": ModelUse(frozenset({"DescribeLoadBalancers", "DescribeInstanceHealth"})),
    "elbv2": ModelUse(frozenset({"DescribeLoadBalancers", "DescribeTargetGroups", "DescribeTargetHealth"})),
    "autoscaling": ModelUse(frozenset({"DescribeAutoScalingGroups"})),
}

# Health words from each source that mean "takes traffic now".
IN_SERVICE = {"InService", "healthy"}


@dataclass(frozen=True)
class Discovered:
    memberships: tuple[Membership, ...]
    # Sources that already return instance details (tags) fill this in.
    instances: dict[str, Instance] = field(default_factory=dict)



# --- classic ELB -------------------------------------------------------------


def _classic_elb_name(elb, wanted: str) -> str:
    if "." not in wanted:  # ELB names cannot contain dots; DNS names always do
        try:
            elb.describe_load_balancers(LoadBalancerNames=[wanted])
        except AwsError as exc:
            if error_code(exc) in ("LoadBalancerNotFound", "AccessPointNotFound"):
                raise DiscoveryError(f"classic ELB {wanted!r} not found") from None
            raise
        return wanted
    for page in elb.get_paginator("describe_load_balancers").paginate():
        for lb in page["LoadBalancerDescriptions"]:
            if lb["DNSName"].lower() == wanted.lower():
                return lb["LoadBalancerName"]
    raise DiscoveryError(f"no classic ELB has the DNS name {wanted!r}")


def classic_elb(clients: AwsClients, wanted: str) -> Discovered:
    name = _classic_elb_name(clients.elb, wanted)
    states = clients.elb.describe_instance_health(LoadBalancerName=name)["InstanceStates"]
    return Discovered(tuple(
        Membership(s["InstanceId"], s["State"] in IN_SERVICE, s["State"]) for s in states
    ))


# --- ALB / NLB and target groups --------------------------------------------


def _elbv2_arn(elbv2, wanted: str) -> str:
    if wanted.startswith("arn:"):
        return wanted
    if "." not in wanted:
        try:
            found = elbv2.describe_load_balancers(Names=[wanted])["LoadBalancers"]
        except AwsError as exc:
            if error_code(exc) == "LoadBalancerNotFound":
                raise DiscoveryError(f"load balancer {wanted!r} not found") from None
            raise
        return found[0]["LoadBalancerArn"]
    for page in elbv2.get_paginator("describe_load_balancers").paginate():
        for lb in page["LoadBalancers"]:
            if lb["DNSName"].lower() == wanted.lower():
                return lb["LoadBalancerArn"]
    raise DiscoveryError(f"no load balancer has the DNS name {wanted!r}")


def _target_members(elbv2, group: dict) -> list[Membership]:
    if group.get("TargetType", "instance") != "instance":
        raise DiscoveryError(
            f"target group {group['TargetGroupName']} has {group['TargetType']} targets; "
            "only instance targets name EC2 instances"
        )
    health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
    return [
        Membership(
            d["Target"]["Id"],
            d["TargetHealth"]["State"] in IN_SERVICE,
            d["TargetHealth"]["State"],
        )
        for d in health["TargetHealthDescriptions"]
    ]


def _merge(memberships: Iterable[Membership]) -> tuple[Membership, ...]:
    """One membership per instance: in service if any target group routes to it."""
    merged: dict[str, Membership] = {}
    for m in memberships:
        seen = merged.get(m.instance_id)
        if seen is None or (m.in_service and not seen.in_service):
            merged[m.instance_id] = m
    return tuple(merged.values())


def elbv2(clients: AwsClients, wanted: str) -> Discovered:
    """ALB/NLB -> the target groups its listeners and rules forward to -> their targets."""
    arn = _elbv2_arn(clients.elbv2, wanted)
    members: list[Membership] = []
    try:
        pages = clients.elbv2.get_paginator("describe_target_groups").paginate(LoadBalancerArn=arn)
        for page in pages:
            for group in page["TargetGroups"]:
                members.extend(_target_members(clients.elbv2, group))
    except AwsError as exc:
        if error_code(exc) == "LoadBalancerNotFound":
            raise DiscoveryError(f"load balancer {wanted!r} not found") from None
        raise
    return Discovered(_merge(members))


def target_group(clients: AwsClients, wanted: str) -> Discovered:
    query = {"TargetGroupArns": [wanted]} if wanted.startswith("arn:") else {"Names": [wanted]}
    try:
        groups = clients.elbv2.describe_target_groups(**query)["TargetGroups"]
    except AwsError as exc:
        if error_code(exc) == "TargetGroupNotFound":
            raise DiscoveryError(f"target group {wanted!r} not found") from None
        raise
    return Discovered(_merge(m for g in groups for m in _target_members(clients.elbv2, g)))


# --- Auto Scaling group and tags --------------------------------------------


def auto_scaling_group(clients: AwsClients, name: str) -> Discovered:
    groups = clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    if not groups["AutoScalingGroups"]:
        raise DiscoveryError(f"Auto Scaling group {name!r} not found")
    members = []
    for inst in groups["AutoScalingGroups"][0]["Instances"]:
        state, health = inst["LifecycleState"], inst.get("HealthStatus", "Healthy")
        status = state if health == "Healthy" else f"{state}/{health}"
        members.append(Membership(inst["InstanceId"], state == "InService" and health == "Healthy", status))
    return Discovered(tuple(members))


def tags(clients: AwsClients, wanted: dict[str, tuple[str, ...]]) -> Discovered:
    filters = [{"Name": f"tag:{key}", "Values": list(values)} for key, values in sorted(wanted.items())]
    filters.append({"Name": "instance-state-name", "Values": list(LIVE_STATES)})
    instances = {
        inst.instance_id: inst
        for inst in _paginate_instances(clients.ec2, Filters=filters)
    }
    members = tuple(
        Membership(i.instance_id, i.state == "running", i.state) for i in instances.values()
    )
    return Discovered(members, instances)


SOURCES = {
    "classic_elb": classic_elb,
    "elbv2": elbv2,
    "target_group": target_group,
    "auto_scaling_group": auto_scaling_group,
    "tags": tags,
}


def discover(clients: AwsClients, site: SiteConfig) -> Discovered:
    return SOURCES[site.source.kind](clients, site.source.value)


# --- instance details --------------------------------------------------------


def is_ip_address(text: str) -> bool:
    """An IPv4 or IPv6 address and nothing else (no scope id: `%...` may hold anything)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return getattr(address, "scope_id", None) is None


def is_ipv6_host_address(text: str) -> bool:
    """An IPv6 address ssh can reach as it is: no scope id, and none of the kinds EC2 never
    assigns an instance (link-local needs a scope, loopback and IPv4-mapped lead elsewhere)."""
    if not isinstance(text, str) or ":" not in text or not is_ip_address(text):
        return False
    address = ipaddress.IPv6Address(text)
    return not (address.is_link_local or address.is_loopback or address.is_multicast
                or address.is_unspecified or address.ipv4_mapped is not None)


def is_dns_name(text: str) -> bool:
    labels = text.removesuffix(".").split(".")
    return 0 < len(text) <= _DNS_NAME_MAX_CHARS and all(_DNS_LABEL_RE.fullmatch(label) for label in labels)


# Instance field -> (its name in messages, the check its value must pass).
_CHECKS = {
    "instance_id": ("instance id", is_instance_id),
    "private_ip": ("private IP address", is_ip_address),
    "public_ip": ("public IP address", is_ip_address),
    "private_dns": ("private DNS name", is_dns_name),
    "public_dns": ("public DNS name", is_dns_name),
    "ipv6": ("IPv6 address", is_ipv6_host_address),
}


def _problem(values: dict) -> str | None:
    for name, (what, valid) in _CHECKS.items():
        value = values[name]
        if value is not None and not valid(value):
            return f"{what} {value!r} is not valid"
    return None


def first_ipv6(raw: dict) -> str | None:
    """The instance's IPv6 address for ssh: EC2's `Ipv6Address` when it gives one, else the
    interfaces in device-index order (eth0 first), each's `IsPrimaryIpv6` address before its
    first listed one. None when no interface has an IPv6 address.

    `Ipv6Address` (the primary IPv6) is in newer answers only, and moto leaves it out, so the
    interfaces are read when it is missing.
    """
    if raw.get("Ipv6Address"):
        return raw["Ipv6Address"]
    interfaces = sorted(raw.get("NetworkInterfaces") or [],
                        key=lambda eni: (eni.get("Attachment") or {}).get("DeviceIndex", 0))
    for eni in interfaces:
        addresses = [a for a in eni.get("Ipv6Addresses") or [] if a.get("Ipv6Address")]
        primary = [a for a in addresses if a.get("IsPrimaryIpv6")]
        if primary or addresses:
            return (primary or addresses)[0]["Ipv6Address"]
    return None


def instance_from_ec2(raw: dict) -> Instance:
    """One DescribeInstances entry as an Instance; an odd value is recorded in `problem`."""
    values = {
        "instance_id": raw["InstanceId"],
        "private_ip": raw.get("PrivateIpAddress") or None,
        "public_ip": raw.get("PublicIpAddress") or None,
        "private_dns": raw.get("PrivateDnsName") or None,
        "public_dns": raw.get("PublicDnsName") or None,
        "ipv6": first_ipv6(raw),
    }
    return Instance(
        **values,
        state=raw.get("State", {}).get("Name", "unknown"),
        availability_zone=raw.get("Placement", {}).get("AvailabilityZone"),
        tags=tuple(sorted((t["Key"], t["Value"]) for t in raw.get("Tags", []))),
        problem=_problem(values),
    )


def _paginate_instances(ec2, **query) -> Iterator[Instance]:
    # Always the paginator: an unpaginated call may stop after some reservations.
    for page in ec2.get_paginator("describe_instances").paginate(**query):
        for reservation in page["Reservations"]:
            for raw in reservation["Instances"]:
                yield instance_from_ec2(raw)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def describe_instances(clients: AwsClients, instance_ids: Iterable[str]) -> dict[str, Instance]:
    """Details for exactly these ids, in batches; ids EC2 no longer knows are left out."""
    wanted = sorted(set(instance_ids))
    found: dict[str, Instance] = {}
    # An empty id list would mean "every instance in the region" to EC2.
    for chunk in _chunks(wanted, DESCRIBE_BATCH):
        for _ in range(NOT_FOUND_RETRIES):
            if not chunk:
                break
            try:
                for inst in _paginate_instances(clients.ec2, InstanceIds=chunk):
                    found[inst.instance_id] = inst
                break
            except AwsError as exc:
                if error_code(exc) != "InvalidInstanceID.NotFound":
                    raise
                missing = set(INSTANCE_ID_IN_TEXT_RE.findall(error_message(exc)))
                if not missing & set(chunk):
                    raise
                chunk = [i for i in chunk if i not in missing]
    return found
