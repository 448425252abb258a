"""Seed the sandbox's demo fleet, and write a config that describes it.

Two regions, three ways of finding a site's instances:
- shop:    a classic ELB in us-east-1,
- api:     an ALB (listener -> target group) in eu-west-1, reached through a bastion,
- workers: an Auto Scaling group in us-east-1.
Tests and the benchmark build their own fleets with the same functions.

moto gives an instance started without a subnet a random 10.x address, and one in a subnet the
next address of the subnet. For `sandbox up --hosts`, where every instance becomes a real host on
one bridge for the default-VPC range (helper/sandbox/hosts.py), shop and api are seeded into
default subnets too, each in a /20 no other site uses: both regions' default VPCs are
172.31.0.0/16, cut into the same /20s, so two regions' instances could otherwise share an address.

For the lifecycle consumer, workers-asg also gets an SQS queue (with a dead-letter queue) and
a launching lifecycle hook that notifies it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import boto3
import yaml

from helper.sandbox.aws.server import SANDBOX_ENV
from helper.setup import hooks

# Any image id works in moto; this one is in its bundled catalogue.
DEMO_AMI = "ami-12c6146b"
INSTANCE_TYPE = "t3.micro"
# moto's default account; AWS never sees this role (every client points at the sandbox).
HOOK_ROLE_ARN = "arn:aws:iam::123456789012:role/asg-hook"
# What `hooks install` gives a real queue: the sandbox's queue behaves the same.
MAX_RECEIVE_COUNT = hooks.MAX_RECEIVE_COUNT
# The consumer's own default (LifecycleConfig.visibility_timeout_s); it extends the
# visibility while a build runs, so this only has to cover one receive-and-dispatch.
QUEUE_VISIBILITY_TIMEOUT_S = 120
# AWS's minimum is 30 s; 60 s lets a demo see a timeout ABANDON without waiting long.
HOOK_HEARTBEAT_TIMEOUT_S = 60
# The DLQ keeps messages for AWS's maximum, 14 days, so nothing expires before someone looks.
DLQ_RETENTION_S = 14 * 24 * 3600
# What `hooks install` tags its queues with (helper/setup/hooks.py).
MANAGED_TAGS = {hooks.MANAGED_TAG_KEY: hooks.MANAGED_TAG_VALUE}


def client(service: str, endpoint_url: str, region: str):
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=SANDBOX_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SANDBOX_ENV["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=SANDBOX_ENV["AWS_SESSION_TOKEN"],
    )


def default_subnets(ec2) -> list[str]:
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    return [s["SubnetId"] for s in sorted(subnets, key=lambda s: s["AvailabilityZone"])]


def free_default_subnet(ec2, taken: set[str]) -> str:
    """The first default subnet whose CIDR is not in `taken` (which gains it); for distinct addresses."""
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    for subnet in sorted(subnets, key=lambda s: s["AvailabilityZone"]):
        if subnet["CidrBlock"] not in taken:
            taken.add(subnet["CidrBlock"])
            return subnet["SubnetId"]
    raise ValueError(f"every default subnet's CIDR is taken: {sorted(taken)}")


def run_instances(ec2, count: int, name: str, subnet_id: str | None = None) -> list[str]:
    reply = ec2.run_instances(
        ImageId=DEMO_AMI, InstanceType=INSTANCE_TYPE, MinCount=count, MaxCount=count,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
        **({"SubnetId": subnet_id} if subnet_id else {}),
    )
    return [i["InstanceId"] for i in reply["Instances"]]


def classic_elb_site(endpoint_url: str, region: str, name: str, count: int, subnet_id: str | None = None) -> str:
    """A classic ELB with `count` instances; returns its DNS name."""
    ec2, elb = client("ec2", endpoint_url, region), client("elb", endpoint_url, region)
    zones = [f"{region}a", f"{region}b"]
    dns = elb.create_load_balancer(
        LoadBalancerName=name,
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}],
        AvailabilityZones=zones,
    )["DNSName"]
    ids = run_instances(ec2, count, name, subnet_id)
    elb.register_instances_with_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": i} for i in ids]
    )
    return dns


def alb_site(endpoint_url: str, region: str, name: str, count: int,
             subnet_id: str | None = None) -> tuple[str, str]:
    """An ALB forwarding to a target group of `count` instances; returns (DNS name, TG ARN)."""
    ec2, elbv2 = client("ec2", endpoint_url, region), client("elbv2", endpoint_url, region)
    subnets = default_subnets(ec2)[:2]
    lb = elbv2.create_load_balancer(Name=name, Subnets=subnets, Type="application")["LoadBalancers"][0]
    vpc = ec2.describe_subnets(SubnetIds=subnets[:1])["Subnets"][0]["VpcId"]
    tg = elbv2.create_target_group(
        Name=f"{name}-tg", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance",
    )["TargetGroups"][0]
    elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    ids = run_instances(ec2, count, name, subnet_id)
    if ids:
        elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": i} for i in ids])
    return lb["DNSName"], tg["TargetGroupArn"]


def auto_scaling_site(
    endpoint_url: str, region: str, name: str, count: int,
    load_balancers: tuple[str, ...] = (), target_groups: tuple[str, ...] = (),
) -> str:
    """An Auto Scaling group of `count` instances; returns its name."""
    ec2, asg = client("ec2", endpoint_url, region), client("autoscaling", endpoint_url, region)
    ec2.create_launch_template(
        LaunchTemplateName=f"{name}-lt",
        LaunchTemplateData={"ImageId": DEMO_AMI, "InstanceType": INSTANCE_TYPE},
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"{name}-lt", "Version": "$Latest"},
        MinSize=0, MaxSize=max(count * 4, 10), DesiredCapacity=count,
        VPCZoneIdentifier=",".join(default_subnets(ec2)[:2]),
        LoadBalancerNames=list(load_balancers), TargetGroupARNs=list(target_groups),
    )
    return name


def lifecycle_queue(endpoint_url: str, region: str, name: str) -> tuple[str, str, str]:
    """A standard queue `name` with a dead-letter queue `<name>-dlq`; returns (URL, ARN, DLQ URL).
    Both carry the tag `hooks install` puts on what it creates: the sandbox stands in for that step,
    so the README's `hooks install` after `sandbox up` finds them its own, as it would on AWS."""
    sqs = client("sqs", endpoint_url, region)
    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_S)}, tags=MANAGED_TAGS,
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": str(QUEUE_VISIBILITY_TIMEOUT_S), "RedrivePolicy": json.dumps(redrive),
    }, tags=MANAGED_TAGS)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq_url


def launch_hook(
    endpoint_url: str, region: str, group: str, queue_arn: str,
    heartbeat_timeout_s: int = HOOK_HEARTBEAT_TIMEOUT_S, name: str = "deploy-on-launch",
) -> str:
    """A launching hook on `group` that notifies `queue_arn` (and sends it the test message)."""
    client("autoscaling", endpoint_url, region).put_lifecycle_hook(
        LifecycleHookName=name, AutoScalingGroupName=group,
        LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
        NotificationTargetARN=queue_arn, RoleARN=HOOK_ROLE_ARN,
        HeartbeatTimeout=heartbeat_timeout_s, DefaultResult="ABANDON",
    )
    return name


@dataclass(frozen=True)
class DemoFleet:
    shop_elb_dns: str
    api_alb_dns: str
    workers_group: str
    region: str = "us-east-1"
    queue_url: str = ""
    queue_arn: str = ""
    dlq_url: str = ""


WORKERS_ELB = "workers-elb"
API_REGION = "eu-west-1"  # the demo's second region, so a config spans two


def seed_demo(endpoint_url: str, in_vpc: bool = False) -> DemoFleet:
    """The demo fleet; `in_vpc` puts every instance in the default-VPC range, at distinct addresses."""
    region = "us-east-1"
    shop_subnet = api_subnet = None
    if in_vpc:
        east = client("ec2", endpoint_url, region)
        # workers-asg uses the first two default subnets (auto_scaling_site); api's region has
        # only three, so it chooses before shop.
        taken = {s["CidrBlock"] for s in east.describe_subnets(SubnetIds=default_subnets(east)[:2])["Subnets"]}
        api_subnet = free_default_subnet(client("ec2", endpoint_url, API_REGION), taken)
        shop_subnet = free_default_subnet(east, taken)
    shop = classic_elb_site(endpoint_url, region, "shop-elb", 3, shop_subnet)
    api = alb_site(endpoint_url, API_REGION, "api-alb", 2, api_subnet)[0]
    # Behind a load balancer of its own, so the demo can show a new instance kept out of it
    # until its deploy completes, and in it after.
    client("elb", endpoint_url, region).create_load_balancer(
        LoadBalancerName=WORKERS_ELB, AvailabilityZones=[f"{region}a", f"{region}b"],
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}])
    workers = auto_scaling_site(endpoint_url, region, "workers-asg", 2, load_balancers=(WORKERS_ELB,))
    queue_url, queue_arn, dlq_url = lifecycle_queue(endpoint_url, region, "deploy-lifecycle")
    launch_hook(endpoint_url, region, workers, queue_arn)
    return DemoFleet(
        shop_elb_dns=shop, api_alb_dns=api, workers_group=workers, region=region,
        queue_url=queue_url, queue_arn=queue_arn, dlq_url=dlq_url,
    )


@dataclass(frozen=True)
class DemoSsh:
    """How the demo's hosts are reached when they are real (`sandbox up --hosts`)."""

    user: str
    identity_file: str
    port: int = 22


@dataclass(frozen=True)
class DemoJenkins:
    """Where the demo's deploy job lives; the token stays out of the config."""

    url: str
    job: str
    credentials_file: str


def demo_config(fleet: DemoFleet, out_dir: Path, jenkins: DemoJenkins | None = None,
                ssh: DemoSsh | None = None) -> dict:
    """The configuration a newcomer would write for the demo fleet; with `ssh`, for real hosts:
    their user and key, one port for every site, and no bastion (the demo has none)."""
    config = {
        "path": {
            "ssh_config_file": str(out_dir / "ssh_config"),
            "known_hosts_file": str(out_dir / "known_hosts"),
            "cap_config_file": str(out_dir / "cap_config.yml"),
            "ansible_inventory_file": str(out_dir / "inventory.yml"),
            "json_file": str(out_dir / "inventory.json"),
            "revision_dir": str(out_dir.parent / "revisions"),
        },
        "defaults": {"user": "deploy", "identity_file": "~/.ssh/deploy.pem"},
        "sites": {
            "shop": {"elb": fleet.shop_elb_dns, "region": "us-east-1", "roles": ["web", "app"]},
            "api": {"load_balancer": fleet.api_alb_dns, "region": "eu-west-1", "roles": ["app"],
                    "proxy_jump": "deploy@bastion.example.com"},
            "workers": {"auto_scaling_group": fleet.workers_group, "region": "us-east-1",
                        "roles": ["worker"], "port": 2222},
        },
    }
    if ssh is not None:
        config["defaults"] = {"user": ssh.user, "identity_file": ssh.identity_file, "port": ssh.port}
        del config["sites"]["api"]["proxy_jump"]
        del config["sites"]["workers"]["port"]
    if jenkins is not None and fleet.queue_url:
        config["lifecycle"] = {
            "queue_url": fleet.queue_url,
            "region": fleet.region,
            "jenkins": {"url": jenkins.url, "job": jenkins.job, "credentials_file": jenkins.credentials_file},
            "groups": {fleet.workers_group: "workers"},
            "visibility_timeout_s": QUEUE_VISIBILITY_TIMEOUT_S,
        }
    return config


def write_demo_config(fleet: DemoFleet, state_dir: Path, jenkins: DemoJenkins | None = None,
                      ssh: DemoSsh | None = None) -> Path:
    path = state_dir / "demo.yml"
    out_dir = (state_dir / "out").resolve()
    text = "# Written by `aws-deploy-helper sandbox up` for the demo fleet.\n"
    text += yaml.safe_dump(demo_config(fleet, out_dir, jenkins, ssh), sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path
