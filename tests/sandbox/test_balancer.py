"""The sandbox's real load balancer: moto's target groups and classic ELBs driving HAProxy, and
target health told from HAProxy's own checks of the test hosts' web app (issue 21)."""

from __future__ import annotations

import os

import pytest

from helper.sandbox.aws import balanced, fleet
from helper.sandbox.balancer import haproxy
from helper.sandbox.balancer.balanced_site import REGION, balanced_site, start_app
from helper.sandbox.balancer.load import Load
from helper.sandbox.hosts import available
from tests.polling import wait_for

pytestmark = pytest.mark.skipif(
    (available() or haproxy.available()) is not None and os.environ.get("CI") != "true",
    reason=str(available() or haproxy.available()))


def health(elbv2, tg_arn: str) -> dict[str, str]:
    return {d["Target"]["Id"]: d["TargetHealth"]["State"]
            for d in elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]}


def test_target_health_is_haproxys_and_a_deregistered_target_drains_then_leaves(aws, tmp_path, network):
    elbv2 = fleet.client("elbv2", aws, REGION)
    with balanced_site(aws, tmp_path, network, 2, delay_s=30) as site:
        first, second = site.instance_ids
        assert health(elbv2, site.tg_arn) == {first: "healthy", second: "healthy"}
        with Load(site.port, workers=2) as load:
            wait_for(lambda: len(load.revisions) and load.sent >= 40, "40 requests through HAProxy")
        assert load.failures == [] and set(load.revisions) == {"v1"}

        # Deregistered: out of HAProxy's rotation at once; listed as draining until nothing is in flight.
        elbv2.deregister_targets(TargetGroupArn=site.tg_arn, Targets=[{"Id": first}])
        assert ("web", first, "drain") in [(site.members.backend(k), i, s) for k, i, s in site.members.transitions]
        assert site.members.in_service(site.tg_arn) == [second]
        wait_for(lambda: health(elbv2, site.tg_arn) == {second: "healthy"}, "the drain to end (no session open)")
        assert elbv2.describe_target_health(TargetGroupArn=site.tg_arn, Targets=[{"Id": first}])[
            "TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "unused"
        # AWS accepts deregistering a target that is not registered (moto raised InvalidTarget).
        elbv2.deregister_targets(TargetGroupArn=site.tg_arn, Targets=[{"Id": first}])

        # Put back: initial until HAProxy's checks pass, then healthy.
        elbv2.register_targets(TargetGroupArn=site.tg_arn, Targets=[{"Id": first}])
        assert health(elbv2, site.tg_arn)[first] == "initial"
        wait_for(lambda: health(elbv2, site.tg_arn)[first] == "healthy", "the host to pass its checks")

        # The app stops: HAProxy's checks fail, and so does the target's health.
        site.hosts[second].run(["sh", "-c", "kill $(cat /srv/app/pid)"])
        wait_for(lambda: health(elbv2, site.tg_arn)[second] == "unhealthy", "the stopped app to fail its checks")
        start_app(site.hosts[second], "v1")
        wait_for(lambda: health(elbv2, site.tg_arn)[second] == "healthy", "the restarted app to pass")


def test_a_classic_elb_is_an_haproxy_backend_too(aws, tmp_path, network):
    elb = fleet.client("elb", aws, REGION)
    with balanced_site(aws, tmp_path, network, 1, extra_backends=("classic",)) as site:
        (instance,) = site.instance_ids
        elb.create_load_balancer(LoadBalancerName="web-classic", AvailabilityZones=[f"{REGION}a"],
                                 Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}])
        site.members.bind(balanced.classic_key("web-classic"), "classic")
        elb.register_instances_with_load_balancer(LoadBalancerName="web-classic", Instances=[{"InstanceId": instance}])
        # Registering it again changes nothing, as on AWS (moto listed it twice).
        elb.register_instances_with_load_balancer(LoadBalancerName="web-classic", Instances=[{"InstanceId": instance}])
        assert elb.describe_load_balancers(LoadBalancerNames=["web-classic"])["LoadBalancerDescriptions"][0][
            "Instances"] == [{"InstanceId": instance}]

        def state() -> str:
            return elb.describe_instance_health(LoadBalancerName="web-classic")["InstanceStates"][0]["State"]
        wait_for(lambda: state() == "InService", "the classic ELB's checks to pass")
        with Load(site.proxy.port("classic"), workers=1) as load:
            wait_for(lambda: load.sent >= 10, "10 requests through the classic ELB's HAProxy backend")
        assert load.failures == [] and set(load.revisions) == {"v1"}
        site.hosts[instance].run(["sh", "-c", "kill $(cat /srv/app/pid)"])
        wait_for(lambda: state() == "OutOfService", "the stopped app to take it out of service")
