"""A fleet for the cost curve that grows in place: 1,000, then 5,000 instances in one region,
then 10,000 over two regions.

Each region holds four sites of equal size, one per way of finding instances: a classic ELB,
an ALB (listener -> target group), an Auto Scaling group and a tag. Every instance belongs to
exactly one site, so the fleet's size is the number of hosts both clients must list.

Why it looks like this:
- A VPC of our own with two /17 subnets per region. moto hands out addresses from an
  instance's subnet, and the default VPC's /20 subnets run out at ~4,000 per subnet (moto
  then answers 500), which is what killed `--instances 5000` before.
- The fleet grows instead of being seeded afresh per size: 10,000 instances are seeded once,
  not 16,000, and the smaller sizes are the same sites with fewer members.
- Instances are started through the API with RunInstances of up to 1,000 at a time (EC2's
  own cap per call) and registered with one call per load balancer batch; the group grows
  by SetDesiredCapacity, which moto fills in-process. Nothing is written into moto's
  backends behind its API, so what the clients read is what the API made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from helper.sandbox.aws import fleet

VPC_CIDR = "10.0.0.0/16"
# Two halves of the VPC, in two zones (an ALB needs subnets in two zones): 32,763 usable
# addresses each, far beyond the largest size.
SUBNET_CIDRS = ("10.0.0.0/17", "10.0.128.0/17")
# EC2's cap on MaxCount per RunInstances call, and a batch moto answers in a few seconds.
RUN_BATCH = 1000
# RegisterTargets and RegisterInstancesWithLoadBalancer take at most this many per call on AWS.
REGISTER_BATCH = 1000
SITE_KINDS = ("elb", "alb", "asg", "tag")
TAG_KEY, TAG_VALUE = "bench-site", "tagged"


@dataclass
class RegionSites:
    """One region's four sites, and how many instances each has now."""

    region: str
    subnets: tuple[str, str]
    elb_dns: str
    alb_dns: str
    target_group_arn: str
    group: str
    sizes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SITE_KINDS, 0))

    @property
    def instances(self) -> int:
        return sum(self.sizes.values())


def _name(region: str, kind: str) -> str:
    return f"bench-{kind}-{region}"


def create_region(url: str, region: str) -> RegionSites:
    """The VPC, subnets, load balancers, target group and (empty) group of one region."""
    ec2 = fleet.client("ec2", url, region)
    vpc = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    subnets = tuple(
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=f"{region}{zone}")["Subnet"]["SubnetId"]
        for cidr, zone in zip(SUBNET_CIDRS, "ab")
    )
    elb = fleet.client("elb", url, region)
    elb_dns = elb.create_load_balancer(
        LoadBalancerName=_name(region, "elb"), Subnets=list(subnets),
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}],
    )["DNSName"]
    elbv2 = fleet.client("elbv2", url, region)
    lb = elbv2.create_load_balancer(Name=_name(region, "alb"), Subnets=list(subnets),
                                    Type="application")["LoadBalancers"][0]
    tg_arn = elbv2.create_target_group(
        Name=_name(region, "tg"), Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance",
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}])
    group = _name(region, "asg")
    ec2.create_launch_template(LaunchTemplateName=f"{group}-lt",
                               LaunchTemplateData={"ImageId": fleet.DEMO_AMI, "InstanceType": fleet.INSTANCE_TYPE})
    fleet.client("autoscaling", url, region).create_auto_scaling_group(
        AutoScalingGroupName=group, LaunchTemplate={"LaunchTemplateName": f"{group}-lt", "Version": "$Latest"},
        MinSize=0, MaxSize=0, DesiredCapacity=0, VPCZoneIdentifier=",".join(subnets),
    )
    return RegionSites(region, subnets, elb_dns, lb["DNSName"], tg_arn, group)


def _run(ec2, count: int, subnet: str, tags: dict[str, str]) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, RUN_BATCH):
        n = min(RUN_BATCH, count - start)
        reply = ec2.run_instances(
            ImageId=fleet.DEMO_AMI, InstanceType=fleet.INSTANCE_TYPE, MinCount=n, MaxCount=n, SubnetId=subnet,
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )
        ids.extend(i["InstanceId"] for i in reply["Instances"])
    return ids


def _batches(ids: list[str]):
    for start in range(0, len(ids), REGISTER_BATCH):
        yield ids[start:start + REGISTER_BATCH]


def grow(url: str, sites: RegionSites, per_site: int) -> None:
    """Add instances until every site of the region has `per_site`; sites never shrink."""
    region = sites.region
    ec2 = fleet.client("ec2", url, region)
    add = {kind: max(0, per_site - sites.sizes[kind]) for kind in SITE_KINDS}
    # Alternate subnets between sites so both zones fill evenly.
    elb_ids = _run(ec2, add["elb"], sites.subnets[0], {"Name": _name(region, "elb")})
    elb = fleet.client("elb", url, region)
    for batch in _batches(elb_ids):
        elb.register_instances_with_load_balancer(
            LoadBalancerName=_name(region, "elb"), Instances=[{"InstanceId": i} for i in batch])
    alb_ids = _run(ec2, add["alb"], sites.subnets[1], {"Name": _name(region, "alb")})
    elbv2 = fleet.client("elbv2", url, region)
    for batch in _batches(alb_ids):
        elbv2.register_targets(TargetGroupArn=sites.target_group_arn, Targets=[{"Id": i} for i in batch])
    _run(ec2, add["tag"], sites.subnets[0], {"Name": _name(region, "tag"), TAG_KEY: TAG_VALUE})
    if add["asg"]:
        fleet.client("autoscaling", url, region).update_auto_scaling_group(
            AutoScalingGroupName=sites.group, MaxSize=per_site, DesiredCapacity=per_site)
    sites.sizes = {kind: max(per_site, sites.sizes[kind]) for kind in SITE_KINDS}


def our_sites(sites: RegionSites) -> dict[str, dict]:
    """The config's `sites:` entries that cover the region's fleet, one per way of finding it."""
    r = sites.region
    return {
        f"elb-{r}": {"region": r, "elb": sites.elb_dns},
        f"alb-{r}": {"region": r, "load_balancer": sites.alb_dns},
        f"asg-{r}": {"region": r, "auto_scaling_group": sites.group},
        f"tag-{r}": {"region": r, "tags": {TAG_KEY: TAG_VALUE}},
    }


def api_floor(regions: list[RegionSites]) -> tuple[int, str]:
    """The fewest AWS calls an inventory of these sites can make, and how it was counted.

    Per region: one DescribeInstances per 1,000 ids found through load balancers and the
    group; one filtered DescribeInstances page per 1,000 tagged instances (the tag site's
    lookup, which returns the details too); and each source's own lookups: classic ELB 2
    (DescribeLoadBalancers, DescribeInstanceHealth), ALB 3 (DescribeLoadBalancers,
    DescribeTargetGroups, DescribeTargetHealth), group 1 (DescribeAutoScalingGroups)."""
    total, parts = 0, []
    for s in regions:
        by_id = s.sizes["elb"] + s.sizes["alb"] + s.sizes["asg"]
        describes = -(-by_id // 1000) + -(-s.sizes["tag"] // 1000)
        total += describes + 2 + 3 + 1
        parts.append(f"{s.region}: {describes} DescribeInstances + 6 lookups")
    return total, "; ".join(parts)
