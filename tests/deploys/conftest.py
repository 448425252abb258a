"""Fixtures of the rollout tests: a site behind two target groups and a classic ELB on the moto
server, and a deploy command that logs what each batch saw."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from helper.sandbox.aws import fleet

REGION = "us-east-1"

# The deploy command: a small Python program that writes, per batch, which hosts it got and
# where every host of the site is registered at that moment (read from the moto server).
DEPLOY = textwrap.dedent("""\
    import json, os, sys, boto3
    elbv2 = boto3.client("elbv2", region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    elb = boto3.client("elb", region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    hosts = [h["instance_id"] for h in json.load(open(os.environ["DEPLOY_JSON"]))["sites"]["web"]]
    seen = {}
    for tg in elbv2.describe_target_groups()["TargetGroups"]:
        for d in elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]:
            seen.setdefault(d["Target"]["Id"], []).append(tg["TargetGroupName"] + ":" + str(d["Target"]["Port"]))
    for lb in elb.describe_load_balancers()["LoadBalancerDescriptions"]:
        for i in lb["Instances"]:
            seen.setdefault(i["InstanceId"], []).append(lb["LoadBalancerName"])
    with open(os.environ["LOG"], "a") as log:
        log.write(json.dumps({"batch": os.environ["ROLLOUT_BATCH"], "revision": os.environ["REVISION"],
                              "hosts": hosts, "registered": seen}) + "\\n")
    sys.exit(1 if os.environ["ROLLOUT_BATCH"] in os.environ.get("FAIL_BATCHES", "").split(",") else 0)
""")


@pytest.fixture
def site(aws, tmp_path, monkeypatch):
    """Six hosts behind two target groups and a classic ELB. (moto keeps one port per target,
    so a host on two ports of one group is left to the code's own table test.)"""
    ec2, elbv2, elb = (fleet.client(n, aws, REGION) for n in ("ec2", "elbv2", "elb"))
    _, tg_arn = fleet.alb_site(aws, REGION, "web", 6)
    ids = sorted(d["Target"]["Id"] for d in
                 elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"])
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    admin = elbv2.create_target_group(Name="web-admin", Protocol="HTTP", Port=8081, VpcId=vpc)["TargetGroups"][0]
    elbv2.register_targets(TargetGroupArn=admin["TargetGroupArn"], Targets=[{"Id": i} for i in ids])
    elb.create_load_balancer(LoadBalancerName="web-classic", AvailabilityZones=[f"{REGION}a"],
                             Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}])
    elb.register_instances_with_load_balancer(LoadBalancerName="web-classic",
                                              Instances=[{"InstanceId": i} for i in ids])
    # A classic ELB shows no draining: its connection-draining timeout is waited out (1 s here).
    elb.modify_load_balancer_attributes(LoadBalancerName="web-classic", LoadBalancerAttributes={
        "ConnectionDraining": {"Enabled": True, "Timeout": 1}})
    config = tmp_path / "deploy.yml"
    config.write_text(yaml.safe_dump({
        "path": {"revision_dir": str(tmp_path / "revisions")},
        "sites": {"web": {"target_group": tg_arn, "region": REGION,
                          "rollout": {"batch": 2, "min_healthy": 4, "drain_timeout_s": 5, "healthy_timeout_s": 5}}}}))
    (tmp_path / "revisions").mkdir()
    (tmp_path / "revisions" / "web.revision").write_text("v1\n")
    (tmp_path / "deploy.py").write_text(DEPLOY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    monkeypatch.setenv("LOG", str(tmp_path / "log.jsonl"))
    monkeypatch.chdir(tmp_path)
    return tmp_path, ids, tg_arn, admin["TargetGroupArn"]
