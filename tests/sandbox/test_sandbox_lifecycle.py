"""The sandbox's Auto Scaling lifecycle hooks, through boto3 against the local moto server."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from helper.sandbox.aws import faults, lifecycle
from helper.sandbox.aws.actions import ActionBook
from tests.polling import wait_for

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
# The field set AWS sends straight to SQS, from the reference payload.
DIRECT_FIELDS = {
    "Origin", "Destination", "LifecycleHookName", "AccountId", "RequestId", "LifecycleTransition",
    "AutoScalingGroupName", "Service", "Time", "EC2InstanceId", "LifecycleActionToken",
}
TEST_FIELDS = {"AccountId", "RequestId", "AutoScalingGroupARN", "AutoScalingGroupName", "Service", "Event", "Time"}
AWS_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# One attempt in all: a Throttling answer must reach the test instead of being retried away.
# (botocore's retries "max_attempts" counts retries after the first try; "total_max_attempts" counts tries.)
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
POLL_DEADLINE_S = 10.0


@dataclass(frozen=True)
class Fleet:
    asg: Any
    ec2: Any
    elb: Any
    elbv2: Any
    sqs: Any
    group: str
    load_balancer: str
    target_group_arn: str
    queue_url: str
    queue_arn: str
    hook: str


def build_fleet(
    *,
    desired: int = 2,
    transition: str = LAUNCHING,
    default_result: str = "ABANDON",
    metadata: str | None = "deploy:web",
) -> Fleet:
    """Two InService instances behind a classic ELB and a target group, then a hook on a queue."""
    client = lambda name: boto3.client(name, region_name="us-east-1", config=NO_RETRIES)  # noqa: E731
    asg, ec2, elb, elbv2, sqs = (client(n) for n in ("autoscaling", "ec2", "elb", "elbv2", "sqs"))
    vpc_id = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"][0]
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={"ImageId": image_id, "InstanceType": "t3.micro"})
    elb.create_load_balancer(
        LoadBalancerName="web",
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}],
        Subnets=[subnet["SubnetId"]],
    )
    tg_arn = elbv2.create_target_group(Name="web", Protocol="HTTP", Port=8080, VpcId=vpc_id)["TargetGroups"][0][
        "TargetGroupArn"
    ]
    dlq_url = sqs.create_queue(QueueName="lifecycle-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName="lifecycle",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})},
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    asg.create_auto_scaling_group(
        AutoScalingGroupName="web",
        LaunchTemplate={"LaunchTemplateName": "web"},
        MinSize=0,
        MaxSize=8,
        DesiredCapacity=desired,
        VPCZoneIdentifier=subnet["SubnetId"],
        LoadBalancerNames=["web"],
        TargetGroupARNs=[tg_arn],
    )
    hook_args = {"NotificationMetadata": metadata} if metadata is not None else {}
    asg.put_lifecycle_hook(
        LifecycleHookName="web-hook",
        AutoScalingGroupName="web",
        LifecycleTransition=transition,
        NotificationTargetARN=queue_arn,
        RoleARN="arn:aws:iam::123456789012:role/hook-role",
        HeartbeatTimeout=30,
        DefaultResult=default_result,
        **hook_args,
    )
    return Fleet(asg, ec2, elb, elbv2, sqs, "web", "web", tg_arn, queue_url, queue_arn, "web-hook")


def receive(fleet: Fleet, count: int) -> list[str]:
    """Exactly `count` raw bodies from the hook's queue (deleted as read), polling with a deadline."""
    bodies: list[str] = []
    end = time.monotonic() + POLL_DEADLINE_S
    while len(bodies) < count and time.monotonic() < end:
        answer = fleet.sqs.receive_message(
            QueueUrl=fleet.queue_url, MaxNumberOfMessages=min(10, count - len(bodies)), WaitTimeSeconds=1
        )
        for message in answer.get("Messages", []):
            bodies.append(message["Body"])
            fleet.sqs.delete_message(QueueUrl=fleet.queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert len(bodies) == count, f"expected {count} messages, got {bodies}"
    return bodies


def receive_notices(fleet: Fleet, count: int) -> list[dict]:
    """`count` lifecycle notifications in the direct shape, skipping the hook's test notification."""
    notices: list[dict] = []
    end = time.monotonic() + POLL_DEADLINE_S
    while len(notices) < count and time.monotonic() < end:
        body = json.loads(receive(fleet, 1)[0])
        if body.get("Event") != "autoscaling:TEST_NOTIFICATION":
            notices.append(body)
    assert len(notices) == count
    return notices


def lifecycle_states(fleet: Fleet) -> dict[str, str]:
    group = fleet.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[fleet.group])["AutoScalingGroups"][0]
    return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}


def elb_members(fleet: Fleet) -> set[str]:
    lbs = fleet.elb.describe_load_balancers(LoadBalancerNames=[fleet.load_balancer])["LoadBalancerDescriptions"]
    return {i["InstanceId"] for i in lbs[0]["Instances"]}


def target_health(fleet: Fleet) -> dict[str, str]:
    answer = fleet.elbv2.describe_target_health(TargetGroupArn=fleet.target_group_arn)
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in answer["TargetHealthDescriptions"]}


def ec2_state(fleet: Fleet, instance_id: str) -> str:
    reservations = fleet.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def complete(fleet: Fleet, result: str, **which: str) -> None:
    fleet.asg.complete_lifecycle_action(
        LifecycleHookName=fleet.hook, AutoScalingGroupName=fleet.group, LifecycleActionResult=result, **which
    )


def scale_out_to_four(fleet: Fleet) -> list[dict]:
    receive(fleet, 1)  # the test notification
    fleet.asg.set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=4)
    return receive_notices(fleet, 2)


# ---- hook creation and scale-out ---------------------------------------------------------------

def test_hook_keeps_its_settings_and_sends_the_test_notification(aws):
    fleet = build_fleet()
    hook = fleet.asg.describe_lifecycle_hooks(AutoScalingGroupName=fleet.group)["LifecycleHooks"][0]
    assert hook["NotificationTargetARN"] == fleet.queue_arn
    assert hook["RoleARN"] == "arn:aws:iam::123456789012:role/hook-role"
    assert hook["NotificationMetadata"] == "deploy:web"
    assert (hook["HeartbeatTimeout"], hook["DefaultResult"], hook["GlobalTimeout"]) == (30, "ABANDON", 3000)

    test = json.loads(receive(fleet, 1)[0])
    assert set(test) == TEST_FIELDS
    assert test["Event"] == "autoscaling:TEST_NOTIFICATION"
    assert test["AutoScalingGroupARN"].endswith(":autoScalingGroupName/web")
    assert AWS_TIME.match(test["Time"])


def test_hook_refuses_a_heartbeat_timeout_below_aws_minimum_and_a_missing_queue(aws):
    fleet = build_fleet()
    with pytest.raises(ClientError) as short:
        fleet.asg.put_lifecycle_hook(
            LifecycleHookName="short", AutoScalingGroupName=fleet.group, LifecycleTransition=LAUNCHING, HeartbeatTimeout=29
        )
    assert short.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError) as missing:
        fleet.asg.put_lifecycle_hook(
            LifecycleHookName="lost",
            AutoScalingGroupName=fleet.group,
            LifecycleTransition=LAUNCHING,
            NotificationTargetARN="arn:aws:sqs:us-east-1:123456789012:no-such-queue",
            RoleARN="arn:aws:iam::123456789012:role/hook-role",
        )
    assert "Unable to publish test message" in missing.value.response["Error"]["Message"]
    hooks = fleet.asg.describe_lifecycle_hooks(AutoScalingGroupName=fleet.group)["LifecycleHooks"]
    assert [h["LifecycleHookName"] for h in hooks] == ["web-hook"]


def test_scale_out_notifies_each_new_instance_and_keeps_it_out_of_traffic(aws):
    fleet = build_fleet()
    before = set(lifecycle_states(fleet))
    notices = scale_out_to_four(fleet)

    for notice in notices:
        assert set(notice) == DIRECT_FIELDS | {"NotificationMetadata"}
        assert notice["LifecycleTransition"] == LAUNCHING
        assert (notice["Origin"], notice["Destination"]) == ("EC2", "AutoScalingGroup")
        assert (notice["LifecycleHookName"], notice["AutoScalingGroupName"]) == ("web-hook", "web")
        assert notice["Service"] == "AWS Auto Scaling"
        assert notice["NotificationMetadata"] == "deploy:web"
        assert AWS_TIME.match(notice["Time"])
    new = {n["EC2InstanceId"] for n in notices}
    states = lifecycle_states(fleet)
    assert set(states) == before | new
    assert {states[i] for i in new} == {"Pending:Wait"}
    assert {states[i] for i in before} == {"InService"}
    assert elb_members(fleet) == before
    assert set(target_health(fleet)) == before


def test_deleting_a_group_with_waiting_instances_drops_its_hooks_and_instances(aws):
    """ruff's F823 found the sandbox's delete shadowing its own `state` module: every delete
    raised UnboundLocalError before reaching moto (issue 20's lint)."""
    fleet = build_fleet()
    notices = scale_out_to_four(fleet)
    assert len(notices) == 2
    fleet.asg.delete_auto_scaling_group(AutoScalingGroupName=fleet.group, ForceDelete=True)
    assert fleet.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[fleet.group])["AutoScalingGroups"] == []
    assert fleet.asg.describe_lifecycle_hooks(AutoScalingGroupName=fleet.group)["LifecycleHooks"] == []


def test_continue_puts_in_service_and_abandon_terminates_and_replaces(aws):
    fleet = build_fleet()
    kept, abandoned = scale_out_to_four(fleet)

    complete(fleet, "CONTINUE", LifecycleActionToken=kept["LifecycleActionToken"])
    assert lifecycle_states(fleet)[kept["EC2InstanceId"]] == "InService"
    assert kept["EC2InstanceId"] in elb_members(fleet)
    assert target_health(fleet)[kept["EC2InstanceId"]] == "healthy"

    complete(fleet, "ABANDON", InstanceId=abandoned["EC2InstanceId"])
    assert ec2_state(fleet, abandoned["EC2InstanceId"]) == "terminated"
    assert abandoned["EC2InstanceId"] not in lifecycle_states(fleet)
    assert abandoned["EC2InstanceId"] not in elb_members(fleet) | set(target_health(fleet))
    (replacement,) = receive_notices(fleet, 1)
    assert replacement["EC2InstanceId"] not in {kept["EC2InstanceId"], abandoned["EC2InstanceId"]}
    states = lifecycle_states(fleet)
    assert len(states) == 4 and states[replacement["EC2InstanceId"]] == "Pending:Wait"


# ---- timeouts and heartbeats -------------------------------------------------------------------

@pytest.mark.parametrize("default_result", ["CONTINUE", "ABANDON"])
def test_heartbeat_timeout_applies_the_default_result(aws, default_result):
    fleet = build_fleet(default_result=default_result)
    receive(fleet, 1)
    fleet.asg.set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=3)
    (notice,) = receive_notices(fleet, 1)
    instance_id = notice["EC2InstanceId"]
    lifecycle.set_time_scale(60.0)  # the 30 s heartbeat timeout now lasts half a real second

    if default_result == "CONTINUE":
        wait_for(lambda: lifecycle_states(fleet).get(instance_id) == "InService", "InService after timeout")
        assert instance_id in elb_members(fleet)
    else:
        (replacement,) = receive_notices(fleet, 1)  # sent by the ticker: no client call in between
        assert replacement["EC2InstanceId"] != instance_id
        assert ec2_state(fleet, instance_id) == "terminated"
    with pytest.raises(ClientError) as gone:
        complete(fleet, "CONTINUE", LifecycleActionToken=notice["LifecycleActionToken"])
    assert gone.value.response["Error"]["Code"] == "ValidationError"


def test_heartbeats_keep_an_action_alive_past_its_timeout(aws):
    fleet = build_fleet(default_result="CONTINUE")
    receive(fleet, 1)
    fleet.asg.set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=3)
    (notice,) = receive_notices(fleet, 1)
    lifecycle.set_time_scale(30.0)  # timeout: one real second
    started_s = time.monotonic()
    # Heartbeat back to back for 2.5 timeouts; the action must outlive them all.
    while time.monotonic() - started_s < 2.5:
        fleet.asg.record_lifecycle_action_heartbeat(
            LifecycleHookName=fleet.hook,
            AutoScalingGroupName=fleet.group,
            LifecycleActionToken=notice["LifecycleActionToken"],
        )
        assert lifecycle_states(fleet)[notice["EC2InstanceId"]] == "Pending:Wait"
    wait_for(lambda: lifecycle_states(fleet)[notice["EC2InstanceId"]] == "InService", "timeout once heartbeats stop")


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def now_s(self) -> float:
        return self.now


def test_global_timeout_ends_an_action_however_often_it_heartbeats():
    clock = _FakeClock()
    book = ActionBook(clock)  # type: ignore[arg-type]
    action = book.start(
        instance_id="i-1", group_name="g", hook_name="h", transition=LAUNCHING, default_result="ABANDON",
        heartbeat_timeout_s=30, account_id="123456789012", region="us-east-1",
    )
    while clock.now + 20 < 3000:
        clock.now += 20
        book.heartbeat(action)
        assert book.take_expired() == []
    clock.now = 3000  # 100 x HeartbeatTimeout
    assert book.take_expired() == [action]


def test_finished_or_unknown_actions_get_aws_validation_error(aws):
    fleet = build_fleet()
    first, second = scale_out_to_four(fleet)
    complete(fleet, "CONTINUE", LifecycleActionToken=first["LifecycleActionToken"])

    with pytest.raises(ClientError) as by_token:
        complete(fleet, "CONTINUE", LifecycleActionToken=first["LifecycleActionToken"])
    error = by_token.value.response
    assert error["Error"]["Code"] == "ValidationError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Message"] == f"No active Lifecycle Action found with token {first['LifecycleActionToken']}"

    with pytest.raises(ClientError) as by_instance:
        fleet.asg.record_lifecycle_action_heartbeat(
            LifecycleHookName=fleet.hook, AutoScalingGroupName=fleet.group, InstanceId=first["EC2InstanceId"]
        )
    assert by_instance.value.response["Error"]["Message"] == (
        f"No active Lifecycle Action found with instance ID {first['EC2InstanceId']}"
    )
    assert lifecycle_states(fleet)[second["EC2InstanceId"]] == "Pending:Wait"  # the other is untouched


# ---- delivery shapes -----------------------------------------------------------------------------

def test_sns_shape_wraps_the_notification_as_a_string(aws):
    fleet = build_fleet()
    lifecycle.set_delivery_shape("sns")
    receive(fleet, 1)
    fleet.asg.set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=3)
    envelope = json.loads(receive(fleet, 1)[0])
    assert envelope["Type"] == "Notification"
    assert isinstance(envelope["Message"], str)
    message = json.loads(envelope["Message"])
    assert set(message) == DIRECT_FIELDS | {"NotificationMetadata"}
    assert envelope["Subject"].startswith("Auto Scaling:  Lifecycle action 'LAUNCHING'")


def test_eventbridge_shape_sends_an_event_without_service_fields(aws):
    fleet = build_fleet()
    receive(fleet, 1)
    lifecycle.set_delivery_shape("eventbridge")
    fleet.asg.set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=3)
    event = json.loads(receive(fleet, 1)[0])
    assert event["detail-type"] == "EC2 Instance-launch Lifecycle Action"
    assert (event["source"], event["region"], event["version"]) == ("aws.autoscaling", "us-east-1", "0")
    assert event["resources"][0].endswith(":autoScalingGroupName/web")
    assert AWS_TIME.match(event["time"])
    assert set(event["detail"]) == DIRECT_FIELDS - {"Service", "Time", "RequestId", "AccountId"} | {
        "NotificationMetadata"
    }


def test_sns_topic_target_publishes_through_the_topic(aws):
    fleet = build_fleet()
    sns = boto3.client("sns", region_name="us-east-1")
    topic_arn = sns.create_topic(Name="lifecycle")["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=fleet.queue_arn)
    receive(fleet, 1)
    fleet.asg.put_lifecycle_hook(
        LifecycleHookName=fleet.hook,
        AutoScalingGroupName=fleet.group,
        NotificationTargetARN=topic_arn,
        RoleARN="arn:aws:iam::123456789012:role/hook-role",
    )
    fleet.asg.set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=3)
    test, notice = (json.loads(body) for body in receive(fleet, 2))
    assert (test["Type"], test["TopicArn"]) == ("Notification", topic_arn)
    assert json.loads(test["Message"])["Event"] == "autoscaling:TEST_NOTIFICATION"
    assert set(json.loads(notice["Message"])) == DIRECT_FIELDS | {"NotificationMetadata"}


# ---- terminating hooks -----------------------------------------------------------------------------

def test_scale_in_waits_in_terminating_wait_and_completion_terminates(aws):
    fleet = build_fleet(transition=TERMINATING, metadata=None)
    receive(fleet, 1)
    fleet.asg.set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=1)
    (notice,) = receive_notices(fleet, 1)
    leaving = notice["EC2InstanceId"]
    assert set(notice) == DIRECT_FIELDS  # no NotificationMetadata when none was set
    assert notice["LifecycleTransition"] == TERMINATING
    assert (notice["Origin"], notice["Destination"]) == ("AutoScalingGroup", "EC2")
    assert lifecycle_states(fleet)[leaving] == "Terminating:Wait"
    assert ec2_state(fleet, leaving) == "running"
    assert leaving not in elb_members(fleet)

    complete(fleet, "ABANDON", LifecycleActionToken=notice["LifecycleActionToken"])
    assert ec2_state(fleet, leaving) == "terminated"
    assert leaving not in lifecycle_states(fleet)
    assert leaving not in elb_members(fleet) | set(target_health(fleet))
    assert list(lifecycle_states(fleet).values()) == ["InService"]


def test_terminated_instances_do_not_stay_healthy_in_load_balancers(aws):
    fleet = build_fleet()
    everyone = set(lifecycle_states(fleet))
    fleet.asg.delete_lifecycle_hook(LifecycleHookName=fleet.hook, AutoScalingGroupName=fleet.group)
    fleet.asg.set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=1)  # moto's own scale-in
    (gone,) = everyone - set(lifecycle_states(fleet))
    assert ec2_state(fleet, gone) == "terminated"
    assert target_health(fleet).get(gone) in (None, "draining", "unused")
    health = fleet.elb.describe_instance_health(LoadBalancerName=fleet.load_balancer)["InstanceStates"]
    assert gone not in {h["InstanceId"] for h in health if h["State"] == "InService"}


# ---- faults ----------------------------------------------------------------------------------------

def test_throttling_switch_answers_like_aws_and_changes_nothing(aws):
    fleet = build_fleet()
    (notice, _) = scale_out_to_four(fleet)
    faults.throttle("CompleteLifecycleAction", every_nth=2)

    complete(fleet, "CONTINUE", LifecycleActionToken=notice["LifecycleActionToken"])  # call 1 passes
    with pytest.raises(ClientError) as throttled:
        complete(fleet, "CONTINUE", LifecycleActionToken=notice["LifecycleActionToken"])  # call 2 throttled
    error = throttled.value.response
    assert (error["Error"]["Code"], error["Error"]["Message"]) == ("Throttling", "Rate exceeded")
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as after:  # call 3 is served again: the action is already finished
        complete(fleet, "CONTINUE", LifecycleActionToken=notice["LifecycleActionToken"])
    assert after.value.response["Error"]["Code"] == "ValidationError"
    fleet.asg.describe_auto_scaling_groups()  # other actions are never throttled


def test_seeded_fractional_throttling_repeats_its_pattern(aws):
    fleet = build_fleet()

    def pattern() -> list[bool]:
        faults.throttle("DescribeAutoScalingGroups", 0.5, seed=7)
        outcome = []
        for _ in range(20):
            try:
                fleet.asg.describe_auto_scaling_groups()
                outcome.append(False)
            except ClientError as error:
                assert error.response["Error"]["Code"] == "Throttling"
                outcome.append(True)
        return outcome

    first = pattern()
    assert 0 < sum(first) < 20
    assert pattern() == first


def test_duplicate_delivery_sends_each_notification_twice(aws):
    fleet = build_fleet()
    receive(fleet, 1)
    faults.set_duplicate_delivery(True)
    fleet.asg.set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=3)
    first, second = receive(fleet, 2)
    assert first == second
    assert json.loads(first)["LifecycleTransition"] == LAUNCHING


def test_http_control_endpoint_drives_the_same_switches(aws):
    fleet = build_fleet()
    control = f"{aws}/_sandbox/faults"
    answer = requests.post(
        control,
        json={
            "throttle": {"DescribeAutoScalingGroups": {"fraction": 1.0}},
            "duplicate_delivery": True,
            "delivery_shape": "eventbridge",
            "time_scale": 60,
        },
        timeout=5,
    )
    assert answer.status_code == 200
    assert answer.json()["throttle"]["DescribeAutoScalingGroups"]["fraction"] == 1.0
    assert (lifecycle.delivery_shape(), lifecycle.time_scale()) == ("eventbridge", 60.0)
    with pytest.raises(ClientError) as throttled:
        fleet.asg.describe_auto_scaling_groups()
    assert throttled.value.response["Error"]["Code"] == "Throttling"
    assert requests.get(control, timeout=5).json()["throttle"]["DescribeAutoScalingGroups"]["throttled"] == 1

    bad = requests.post(control, json={"delivery_shape": "carrier-pigeon"}, timeout=5)
    assert bad.status_code == 400 and lifecycle.delivery_shape() == "eventbridge"

    cleared = requests.delete(control, timeout=5).json()
    assert cleared == {"throttle": {}, "duplicate_delivery": False, "delivery_shape": "direct", "time_scale": 1.0}
    fleet.asg.describe_auto_scaling_groups()


def test_a_forged_token_for_a_waiting_instance_is_a_validation_error_and_changes_nothing(aws):
    fleet = build_fleet()
    genuine, _ = scale_out_to_four(fleet)
    forged = "0b1e6a2c-0000-4000-8000-00000000f0r9"
    target = dict(LifecycleHookName=fleet.hook, AutoScalingGroupName=fleet.group, LifecycleActionToken=forged)
    for call in (lambda: fleet.asg.record_lifecycle_action_heartbeat(**target),
                 lambda: complete(fleet, "ABANDON", LifecycleActionToken=forged)):
        with pytest.raises(ClientError) as error:
            call()
        assert error.value.response["Error"]["Code"] == "ValidationError"
        assert error.value.response["Error"]["Message"] == f"No active Lifecycle Action found with token {forged}"
    assert lifecycle_states(fleet)[genuine["EC2InstanceId"]] == "Pending:Wait"
    fleet.asg.record_lifecycle_action_heartbeat(
        LifecycleHookName=fleet.hook, AutoScalingGroupName=fleet.group,
        LifecycleActionToken=genuine["LifecycleActionToken"])  # the genuine one still answers


def test_describe_auto_scaling_instances_shows_the_waiting_state(aws):
    fleet = build_fleet()
    notices = scale_out_to_four(fleet)
    ids = [n["EC2InstanceId"] for n in notices] + ["i-0123456789abcdef0"]
    seen = fleet.asg.describe_auto_scaling_instances(InstanceIds=ids)["AutoScalingInstances"]
    assert {i["InstanceId"]: (i["AutoScalingGroupName"], i["LifecycleState"]) for i in seen} == {
        n["EC2InstanceId"]: (fleet.group, "Pending:Wait") for n in notices}
