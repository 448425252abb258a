"""`iam-policy`: every AWS call the real code paths make is allowed by the right principal's
policy. A botocore `before-call` recorder rides on the clients the code builds through the
AwsClients seam; the inventory, the consumer and the setup commands run against moto."""

from __future__ import annotations

import json
import threading

import botocore.session
import pytest
import yaml

from helper.aws.clients import CONSUMER_BOTO_CONFIG, AccessKey, AwsClients, ModelUse
from helper.cli import main
from helper.config.document import parse
from helper.config.yamlfile import load_text
from helper.consumer.autoscaling import AutoScaling
from helper.consumer.jenkins_client import JenkinsJobs
from helper.consumer.loop import Consumer
from helper.consumer.sqs import Queue
from helper.inventory import collect
from helper.sandbox.aws import fleet
from helper.settings import ConsumerSettings, Outputs, Settings, SetupSettings, load_config
from helper.setup import iam_policy
from helper.setup.doctor import diagnose
from helper.setup.hooks import HOOK_ROLE_ACTIONS
from helper.setup.hooks_apply import SetupApi, run
from tests.polling import wait_for
from tests.scenario import JENKINS_TOKEN, JENKINS_USER, Scenario

REGION = "us-east-1"


class Recorder:
    """(service, operation) of every call made through the clients it is registered on."""

    def __init__(self) -> None:
        self.calls: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, model, **_) -> None:
        with self._lock:
            self.calls.add((model.service_model.service_name, model.name))


def record_client_calls(monkeypatch) -> Recorder:
    """Every call through any AwsClients.client for the rest of the test, into the Recorder returned."""
    recorder, made = Recorder(), AwsClients.client

    def recording(self, service):
        client = made(self, service)
        client.meta.events.register("before-call", recorder)
        return client

    monkeypatch.setattr(AwsClients, "client", recording)
    return recorder


class RecordingClients(AwsClients):
    """The product's AwsClients, with the recorder on every client and base session it makes."""

    def __init__(self, key: AccessKey, recorder: Recorder, **kwargs) -> None:
        super().__init__(key, **kwargs)
        self._recorder = recorder

    def _base_session(self) -> botocore.session.Session:
        session = super()._base_session()
        session.register("before-call", self._recorder)  # sees AssumeRole, made before client()
        return session

    def client(self, service: str):
        made = super().client(service)
        made.meta.events.register("before-call", self._recorder)
        return made


def factory(recorder: Recorder, **kwargs):
    return lambda key: RecordingClients(key, recorder, **kwargs)


def assert_allowed(principal: str, calls: set[tuple[str, str]], config) -> None:
    allowed = {a for s in iam_policy.document(principal, config)["Statement"] for a in s["Action"]}
    for service, operation in sorted(calls):
        rows = [c for c in iam_policy.CALLS if (c.service, c.operation) == (service, operation)
                and principal in c.principals]
        assert rows, f"{principal} calls {service}:{operation}, which iam_policy.CALLS does not list for it"
        assert all(r.action is None or r.action in allowed for r in rows), (principal, service, operation)


def test_inventory_calls_for_every_source_kind_are_in_the_helper_policy(aws, tmp_path):
    elb_dns = fleet.classic_elb_site(aws, REGION, "shop-elb", 2)
    alb_dns, tg_arn = fleet.alb_site(aws, REGION, "api-alb", 2)
    fleet.auto_scaling_site(aws, REGION, "workers-asg", 1)
    sites = {"shop": {"elb": elb_dns}, "api": {"load_balancer": alb_dns}, "tg": {"target_group": tg_arn},
             "workers": {"asg": "workers-asg", "role_arn": "arn:aws:iam::123456789012:role/inventory-reader"},
             "tagged": {"tags": {"Name": "shop-elb"}}}
    path = tmp_path / "sites.yml"
    path.write_text(yaml.safe_dump({"sites": sites}))
    config = load_config(str(path))
    recorder = Recorder()
    results = collect.collect(Settings(config=config, outputs=Outputs(), endpoint_url=aws), factory(recorder))
    assert [r.error for r in results] == [None] * 5 and all(r.inventory.hosts for r in results)
    assert ("sts", "AssumeRole") in recorder.calls and ("elb", "DescribeInstanceHealth") in recorder.calls
    assert_allowed(iam_policy.HELPER, recorder.calls, config)


def test_consumer_calls_during_a_scale_up_are_in_the_consumer_policy(aws, tmp_path):
    world = Scenario(aws, tmp_path, heartbeat_interval_s=None)  # reads the hook's timeout, as in production
    try:
        class Args:
            config, endpoint_url, once = str(world.config_path), aws, False

        settings = ConsumerSettings.from_args(Args, {"JENKINS_USER": JENKINS_USER, "JENKINS_API_TOKEN": JENKINS_TOKEN})
        lc, recorder = settings.lifecycle, Recorder()
        clients = factory(recorder, boto_config=CONSUMER_BOTO_CONFIG)(AccessKey(region=lc.region, endpoint_url=aws))
        consumer = Consumer(lc, Queue(clients.client("sqs"), lc.queue_url), AutoScaling(clients.autoscaling),
                            JenkinsJobs.connect(lc.jenkins.url, JENKINS_USER, JENKINS_TOKEN, lc.jenkins.timeout_s))
        stop = threading.Event()
        thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        thread.start()
        new = world.scale_to(3)
        wait_for(lambda: world.all_in_service(new), what="CONTINUE")
        wait_for(lambda: world.queue_depth() == 0, what="message deleted")
        stop.set()
        thread.join(timeout=30)
        assert {("sqs", "ReceiveMessage"), ("sqs", "DeleteMessage"),
                ("autoscaling", "CompleteLifecycleAction")} <= recorder.calls
        assert_allowed(iam_policy.CONSUMER, recorder.calls, settings.config)
    finally:
        world.close()


def test_setup_and_doctor_calls_are_in_the_setup_policy(aws, tmp_path, monkeypatch):
    fleet.auto_scaling_site(aws, REGION, "web-asg", 1)
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump({"sites": {"web": {"asg": "web-asg"}}, "lifecycle": {
        "queue_url": f"{aws}/123456789012/hooks", "region": REGION,
        "jenkins": {"url": "http://127.0.0.1:9/", "job": "deploy"},
        "groups": {"web-asg": {"site": "web", "terminate_job": "drain"}}}}))

    class Args:
        config, endpoint_url, dry_run = str(path), aws, False

    settings, recorder = SetupSettings.from_args(Args, {}), Recorder()
    api = SetupApi.from_settings(settings, factory(recorder))
    run("install", settings, api)
    run("install", settings, api)
    diagnose(settings, api)
    run("remove", settings, api, force=True)  # the hooks' test notifications are still queued
    assert ("iam", "CreateRole") in recorder.calls and ("autoscaling", "DeleteLifecycleHook") in recorder.calls
    assert_allowed(iam_policy.SETUP, recorder.calls, settings.config)


def test_setup_policy_lets_install_tag_what_it_creates():
    """CreateQueue with tags and CreateRole with Tags are also authorised as TagQueue and TagRole."""
    actions = {a for s in iam_policy.document(iam_policy.SETUP)["Statement"] for a in s["Action"]}
    assert {"sqs:TagQueue", "iam:TagRole", "sqs:ListQueueTags", "iam:GetRole"} <= actions


def test_hook_role_policy_is_what_install_gives_the_role():
    actions = {a for s in iam_policy.document(iam_policy.HOOK_ROLE)["Statement"] for a in s["Action"]}
    assert actions == set(HOOK_ROLE_ACTIONS)


def test_every_row_names_a_real_botocore_operation():
    session = botocore.session.get_session()
    for call in iam_policy.CALLS:
        if call.operation == "PassRole":  # an authorisation, not an API call
            continue
        assert call.operation in session.get_service_model(call.service).operation_names, call


@pytest.mark.parametrize("argv", [[], ["--principal", "consumer"], ["--principal", "setup"]])
def test_printed_documents_are_valid_policy_json(argv, capsys):
    assert main(["iam-policy", *argv]) == 0
    printed = json.loads(capsys.readouterr().out)
    documents = list(printed.values()) if not argv else [printed]
    if not argv:
        assert sorted(printed) == sorted(iam_policy.DEFAULT_PRINCIPALS)
    for document in documents:
        assert document["Version"] == "2012-10-17" and document["Statement"]
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow" and statement["Action"] and statement["Resource"]


def test_with_a_config_resources_are_scoped_to_its_queue_groups_and_roles(aws, tmp_path, capsys):
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump({"sites": {"web": {"asg": "web-asg"}}, "lifecycle": {
        "queue_url": "https://sqs.eu-west-1.amazonaws.com/111122223333/hooks", "region": "eu-west-1",
        "jenkins": {"url": "http://127.0.0.1:9/", "job": "deploy"}, "groups": {"web-asg": "web"}}}))
    assert main(["iam-policy", "-c", str(path), "--principal", "consumer"]) == 0
    statements = {s["Sid"]: s for s in json.loads(capsys.readouterr().out)["Statement"]}
    assert statements["HookQueue"]["Resource"] == "arn:aws:sqs:eu-west-1:111122223333:hooks"
    assert statements["ConfiguredGroups"]["Resource"] == (
        "arn:aws:autoscaling:eu-west-1:111122223333:autoScalingGroup:*:autoScalingGroupName/web-asg")
    assert "sqs:SendMessage" not in json.dumps(statements["HookQueue"])  # only to its dead-letter queue
    assert statements["DeadLetterQueue"] == {"Sid": "DeadLetterQueue", "Effect": "Allow", "Action": ["sqs:SendMessage"],
                                             "Resource": "arn:aws:sqs:eu-west-1:111122223333:hooks-dlq"}


def test_fleet_hold_release_and_the_consumers_expired_release_are_in_their_policies(aws, tmp_path, capsys):
    from datetime import datetime, timedelta, timezone

    from helper.deploys import fleet_hold

    world = Scenario(aws, tmp_path)
    try:
        config = load_config(str(world.config_path))
        helper_calls, consumer_calls = Recorder(), Recorder()
        client = factory(helper_calls)(AccessKey(region=REGION, endpoint_url=aws)).autoscaling
        fleet_hold.hold(client, "web", ["web-asg"], holder="build-1")
        fleet_hold.release(client, "web", ["web-asg"], holder="build-1")
        # A killed build's hold, as the consumer's reconcile finds it.
        fleet_hold.hold(client, "web", ["web-asg"], holder="build-2", now=datetime.now(timezone.utc) - timedelta(days=1))
        assert {("autoscaling", "SuspendProcesses"), ("autoscaling", "CreateOrUpdateTags"),
                ("autoscaling", "ResumeProcesses"), ("autoscaling", "DeleteTags")} <= helper_calls.calls
        assert_allowed(iam_policy.HELPER, helper_calls.calls, config)
        lc = config.lifecycle
        clients = factory(consumer_calls, boto_config=CONSUMER_BOTO_CONFIG)(AccessKey(region=lc.region,
                                                                                       endpoint_url=aws))
        consumer = Consumer(lc, Queue(clients.client("sqs"), lc.queue_url), AutoScaling(clients.autoscaling),
                            JenkinsJobs.connect(lc.jenkins.url, JENKINS_USER, JENKINS_TOKEN, lc.jenkins.timeout_s))
        consumer.maintenance.release_expired_holds()
        assert {("autoscaling", "ResumeProcesses"), ("autoscaling", "DeleteTags")} <= consumer_calls.calls
        assert_allowed(iam_policy.CONSUMER, consumer_calls.calls, config)
    finally:
        world.close()
    # Scoped to the configured groups.
    assert main(["iam-policy", "-c", str(world.config_path), "--principal", "helper"]) == 0
    statements = {s["Sid"]: s for s in json.loads(capsys.readouterr().out)["Statement"]}
    assert statements["HeldGroups"]["Resource"].endswith(":autoScalingGroup:*:autoScalingGroupName/web-asg")
    assert "autoscaling:SuspendProcesses" in statements["HeldGroups"]["Action"]


def test_the_setup_policy_covers_what_doctors_site_check_and_breaker_reset_call():
    """Issue 24: doctor resolves each site (EC2, ELB, AssumeRole) and breaker reset publishes to the alert
    topic, but the setup principal's policy had none of those actions."""
    from helper.inventory.discover import INVENTORY_MODELS

    setup = {c.action for c in iam_policy.CALLS if iam_policy.SETUP in c.principals}
    inventory = {c.action for c in iam_policy.CALLS if iam_policy.HELPER in c.principals and (
        c.service == "sts" or c.operation in INVENTORY_MODELS.get(c.service, ModelUse(frozenset())).operations)}
    assert inventory <= setup and "sns:Publish" in setup
    consumer_releases = {c.resource for c in iam_policy.CALLS if iam_policy.CONSUMER in c.principals
                         and c.action in ("autoscaling:ResumeProcesses", "autoscaling:DeleteTags")}
    assert consumer_releases == {iam_policy.HELD}, "every group a hold can cover (issue 19 item 6)"


def test_every_call_doctor_makes_through_the_real_clients_is_in_the_setup_policy(aws, tmp_path, capsys,
                                                                                  monkeypatch):
    """Issue 24: the first recording saw only the setup seam's calls; doctor's site check resolves
    each site through the inventory's own clients (EC2, ELB, AssumeRole). Every client and base
    session the program makes carries the recorder here, whichever code path builds it."""
    from helper.cli import main

    fleet.auto_scaling_site(aws, REGION, "web-asg", 1)
    fleet.classic_elb_site(aws, REGION, "shop-elb", 1)
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump({"sites": {
        "web": {"asg": "web-asg"},
        "shop": {"elb": "shop-elb", "role_arn": "arn:aws:iam::123456789012:role/deploy-read"}},
        "lifecycle": {"queue_url": f"{aws}/123456789012/hooks", "region": REGION,
                      "jenkins": {"url": "http://127.0.0.1:9/", "job": "deploy"}, "groups": {"web-asg": "web"}}}))
    recorder = Recorder()
    made, based = AwsClients.client, AwsClients._base_session

    def client(self, service):
        found = made(self, service)
        found.meta.events.register("before-call", recorder)
        return found

    def base_session(self):
        session = based(self)
        session.register("before-call", recorder)
        return session

    monkeypatch.setattr(AwsClients, "client", client)
    monkeypatch.setattr(AwsClients, "_base_session", base_session)
    monkeypatch.setenv("JENKINS_USER", "u")
    monkeypatch.setenv("JENKINS_API_TOKEN", "t")
    main(["doctor", "-c", str(path), "--endpoint-url", aws])
    assert {("ec2", "DescribeInstances"), ("elb", "DescribeLoadBalancers"), ("sts", "AssumeRole"),
            ("autoscaling", "DescribeLifecycleHooks")} <= recorder.calls, capsys.readouterr().out
    config = parse(load_text(path.read_text(), str(path)))
    assert_allowed(iam_policy.SETUP, recorder.calls, config)
