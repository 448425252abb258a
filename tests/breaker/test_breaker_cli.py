"""`breaker status`, `breaker reset`, doctor's breaker line, and the IAM rows the breaker needs,
against the moto server (issue 11)."""

from __future__ import annotations

import json

import pytest
import yaml

from helper.aws.clients import AccessKey
from helper.breaker.sites import SiteBreakers
from helper.breaker.state import BreakerState, BreakerStore, State
from helper.cli import main
from helper.sandbox.aws import fleet
from helper.settings import load_config
from helper.setup import iam_policy
from helper.setup.breaker_cmd import SiteBreaker
from helper.setup.doctor import check_breakers
from helper.setup.findings import OK, WARN
from tests.setup.test_iam_policy import Recorder, assert_allowed, factory

REGION = "us-east-1"
OPEN = BreakerState(State.OPEN, "v1.4.2", 3, "2026-11-27T17:53:55Z",
                    "3 consecutive scale-up deploys of v1.4.2 failed; last: FAILURE http://ci/job/deploy/12/")


@pytest.fixture
def setup(aws, tmp_path):
    fleet.auto_scaling_site(aws, REGION, "web-asg", 1)
    fleet.auto_scaling_site(aws, REGION, "shop-asg", 1)
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump({"sites": {"web": {"asg": "web-asg"}, "shop": {"asg": "shop-asg"}}, "lifecycle": {
        "queue_url": f"{aws}/123456789012/hooks", "region": REGION,
        "jenkins": {"url": "http://127.0.0.1:9/", "job": "deploy"},
        "groups": {"web-asg": "web", "shop-asg": "shop"}}}))
    store = BreakerStore(fleet.client("autoscaling", aws, REGION))
    return str(path), store


def test_status_shows_each_sites_state_why_since_and_held(setup, aws, capsys):
    path, store = setup
    store.write("web", ["web-asg"], OPEN)
    assert main(["breaker", "status", "-c", path, "--endpoint-url", aws]) == 0
    header, shop, web = capsys.readouterr().out.splitlines()
    assert header.split() == ["site", "state", "revision", "failures", "since", "held", "reason"]
    assert shop.split()[:6] == ["shop", "closed", "-", "0", "-", "0"]
    assert web.split()[:6] == ["web", "open", "v1.4.2", "3", "2026-11-27T17:53:55Z", "0"]
    assert '"3 consecutive scale-up deploys of v1.4.2 failed; last: FAILURE http://ci/job/deploy/12/"' in web
    assert main(["breaker", "status", "-c", path, "--endpoint-url", aws, "--site", "web", "--json"]) == 0
    (only,) = json.loads(capsys.readouterr().out)
    assert (only["site"], only["state"], only["failures"], only["held"]) == ("web", "open", 3, [])


def test_reset_closes_the_breaker_and_says_what_it_was(setup, aws, capsys):
    path, store = setup
    store.write("web", ["web-asg"], OPEN)
    assert main(["breaker", "reset", "-c", path, "--endpoint-url", aws, "--site", "web"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("web: breaker closed (was open since 2026-11-27T17:53:55Z: 3 failures of v1.4.2); "
                          "0 held instance(s) will be deployed by the consumer")
    after = store.read("web", ["web-asg"])
    assert (after.state, after.failures, after.reason) == (State.CLOSED, 0, "reset by an operator")


def test_reset_of_an_unknown_site_is_a_usage_error(setup, aws, capsys):
    path, _ = setup
    assert main(["breaker", "reset", "-c", path, "--endpoint-url", aws, "--site", "blog"]) == 2
    assert "--site blog: no lifecycle group routes to it" in capsys.readouterr().err


def test_doctor_warns_about_an_open_breaker(setup):
    path, _ = setup
    lc = load_config(path).lifecycle
    (line,) = check_breakers([SiteBreaker("web", ("web-asg",), OPEN)], lc, path)
    assert line.level == WARN
    assert line.line().startswith("WARN breaker site web is OPEN since 2026-11-27T17:53:55Z (3 failures of v1.4.2), "
                                  "0 instance(s) held — deploy a good revision")
    (fine,) = check_breakers([SiteBreaker("web", ("web-asg",), BreakerState())], lc, path)
    assert fine.level == OK


def test_breaker_calls_are_in_the_consumer_and_setup_policies(setup, aws, tmp_path):
    path, _ = setup
    sns = fleet.client("sns", aws, REGION)
    topic = sns.create_topic(Name="deploy-alerts")["TopicArn"]
    config = yaml.safe_load(open(path))
    config["lifecycle"]["alerts"] = {"sns_topic_arn": topic}
    config["path"] = {"revision_dir": str(tmp_path / "revisions")}
    open(path, "w").write(yaml.safe_dump(config))
    config = load_config(path)
    consumer_calls, setup_calls = Recorder(), Recorder()
    clients = factory(consumer_calls)(AccessKey(region=REGION, endpoint_url=aws))
    from prometheus_client import CollectorRegistry

    breakers = SiteBreakers.from_clients(config.lifecycle, clients.autoscaling, CollectorRegistry(),
                                         str(tmp_path / "revisions"), sns_client=clients.client("sns"))
    for _ in range(3):  # opens, and alerts
        breakers.record("web", "FAILURE", "http://ci/job/deploy/1/", "v1")
    assert breakers.state("web").is_open
    breakers.close(10.0)
    assert breakers.alerts.sent == 1
    setup_clients = factory(setup_calls)(AccessKey(region=REGION, endpoint_url=aws))
    from helper.consumer.autoscaling import AutoScaling
    from helper.setup import breaker_cmd

    store = BreakerStore(setup_clients.autoscaling)
    breaker_cmd.reset_site(store, AutoScaling(setup_clients.autoscaling), config.lifecycle, "web")
    assert {("autoscaling", "DescribeTags"), ("autoscaling", "CreateOrUpdateTags"), ("sns", "Publish")} <= \
        consumer_calls.calls
    assert_allowed(iam_policy.CONSUMER, consumer_calls.calls, config)
    assert_allowed(iam_policy.SETUP, setup_calls.calls, config)
    statements = {s["Sid"]: s for s in iam_policy.document(iam_policy.CONSUMER, config)["Statement"]}
    assert statements["AlertTopic"] == {"Sid": "AlertTopic", "Effect": "Allow", "Action": ["sns:Publish"],
                                        "Resource": topic}
