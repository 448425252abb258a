"""doctor warns when a site's rolling deploy can outlast the Jenkinsfile's timeout (issue 21)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import yaml

from helper.sandbox.aws import fleet
from helper.settings import load_config
from helper.setup.doctor_sites import JENKINSFILE_TIMEOUT_S, check_rollouts, site_results
from helper.setup.findings import OK, WARN

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def test_the_timeout_is_the_shipped_jenkinsfiles():
    (minutes,) = re.findall(r"timeout\(time: (\d+), unit: 'MINUTES'\)", (ROOT / "Jenkinsfile").read_text())
    assert JENKINSFILE_TIMEOUT_S == int(minutes) * 60


def test_a_default_deregistration_delay_that_outlasts_the_build_is_a_warning_naming_the_fix(aws, tmp_path):
    elbv2 = fleet.client("elbv2", aws, REGION)
    _, tg_arn = fleet.alb_site(aws, REGION, "web", 10)  # moto keeps AWS's default delay: 300 s
    config_path = tmp_path / "deploy.yml"
    config_path.write_text(yaml.safe_dump({"sites": {"web": {"target_group": tg_arn, "region": REGION, "rollout": {
        "batch": 1, "min_healthy": "50%", "drain_timeout_s": 600, "healthy_timeout_s": 120}}}}))
    settings = SimpleNamespace(config=load_config(str(config_path)), endpoint_url=aws)

    (finding,) = check_rollouts(settings, site_results(settings))
    assert finding.level == WARN and finding.subject == "rollout web", finding
    assert "10 batch(es)" in finding.text and "target group web-tg 300 s" in finding.text and "60 min" in finding.text
    assert "plus 10 x the deploy command" in finding.text
    assert "deregistration_delay.timeout_seconds" in finding.fix

    elbv2.modify_target_group_attributes(TargetGroupArn=tg_arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "30"}])
    (finding,) = check_rollouts(settings, site_results(settings))
    assert finding.level == OK, finding


def test_a_site_without_a_rollout_section_is_not_checked(aws, tmp_path):
    _, tg_arn = fleet.alb_site(aws, REGION, "web", 2)
    config_path = tmp_path / "deploy.yml"
    config_path.write_text(yaml.safe_dump({"sites": {"web": {"target_group": tg_arn, "region": REGION}}}))
    settings = SimpleNamespace(config=load_config(str(config_path)), endpoint_url=aws)
    assert check_rollouts(settings, site_results(settings)) == []


def test_every_call_the_rollout_check_makes_is_in_the_setup_policy(aws, tmp_path, monkeypatch):
    from helper.setup import iam_policy
    from tests.setup.test_iam_policy import assert_allowed, record_client_calls

    elb = fleet.client("elb", aws, REGION)
    fleet.classic_elb_site(aws, REGION, "shop", 2)
    elb.modify_load_balancer_attributes(LoadBalancerName="shop", LoadBalancerAttributes={
        "ConnectionDraining": {"Enabled": True, "Timeout": 300}})
    config_path = tmp_path / "deploy.yml"
    config_path.write_text(yaml.safe_dump({"sites": {"shop": {"elb": "shop", "region": REGION,
                                                              "rollout": {"batch": 1}}}}))
    settings = SimpleNamespace(config=load_config(str(config_path)), endpoint_url=aws)
    recorder = record_client_calls(monkeypatch)
    (finding,) = check_rollouts(settings, site_results(settings))
    assert ("elb", "DescribeLoadBalancerAttributes") in recorder.calls, recorder.calls
    assert_allowed(iam_policy.SETUP, recorder.calls, settings.config)
