"""The consumer puts back the hosts of a dead rollout once its record expired (issue 21), and only
into load balancers the site's own groups are attached to."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from helper.aws.errors import translated
from helper.consumer.autoscaling import AutoScaling
from helper.consumer.rollout_expiry import ExpiredRollouts
from helper.deploys.load_balancers import LoadBalancers
from helper.deploys.rollout_record import RolloutRecords, stamp
from helper.sandbox.aws import fleet
from tests.scenario import GROUP, REGION, SITE


def test_expired_records_are_restored_into_the_groups_load_balancers_only(world, aws):
    ec2 = translated(fleet.client("ec2", aws, REGION))
    lbs = LoadBalancers(translated(world.elbv2), translated(world.elb))
    records = RolloutRecords(ec2)
    dead, live = sorted(world.instances())
    now = datetime.now(timezone.utc)
    # A forged membership in a target group that does not serve the site (not attached to the group).
    vpc = fleet.client("ec2", aws, REGION).describe_vpcs()["Vpcs"][0]["VpcId"]
    payments = world.elbv2.create_target_group(Name="payments", Protocol="HTTP", Port=80, VpcId=vpc)[
        "TargetGroups"][0]["TargetGroupArn"]
    out_dead = lbs.memberships([dead])
    records.take_out(SITE, "https://ci/job/deploy/7/", stamp(now - timedelta(hours=2), 60), out_dead)
    lbs.deregister(out_dead)
    out_live = lbs.memberships([live])
    records.take_out(SITE, "https://ci/job/deploy/8/", stamp(now, 3600), out_live)  # a rollout still running
    lbs.deregister(out_live)
    ec2.create_tags(Resources=[dead], Tags=[{"Key": "aws-deploy-helper:rollout:9", "Value": f"tg|{payments}|80"}])
    assert dead not in world.in_elb() and live not in world.in_elb()

    restored = ExpiredRollouts(records, lbs, AutoScaling(fleet.client("autoscaling", aws, REGION)),
                               {SITE: [GROUP]}).restore()

    assert restored == [dead]
    assert dead in world.in_elb() and dead in world.in_target_group()
    assert live not in world.in_elb()  # its rollout's own: not expired yet
    payments_targets = world.elbv2.describe_target_health(TargetGroupArn=payments)["TargetHealthDescriptions"]
    assert payments_targets == []  # the forged record put nobody there
    assert [r.instance_id for r in records.read(SITE)[0]] == [live]


def test_the_consumer_runs_the_pass_in_its_upkeep_with_a_site_of_two_groups(world, aws):
    """Wired by Consumer.from_settings as a config of several groups has it: the pass was given the
    group -> route map instead of site -> groups, crashed the consumer on a second group (sorting
    routes) and with one group looked for records of a site named by a route object, restoring none."""
    world.set_lifecycle(groups={GROUP: SITE, "web-asg-2": SITE})
    lbs = LoadBalancers(translated(world.elbv2), translated(world.elb))
    records = RolloutRecords(translated(fleet.client("ec2", aws, REGION)))
    dead = world.instances()[0]
    out = lbs.memberships([dead])
    records.take_out(SITE, "https://ci/job/deploy/7/", stamp(datetime.now(timezone.utc) - timedelta(hours=2), 60), out)
    lbs.deregister(out)
    consumer = world.consumer()
    consumer.maintenance.run()
    assert consumer.metrics.rollout_expired_restores._value.get() == 1
    assert dead in world.in_elb() and dead in world.in_target_group()
