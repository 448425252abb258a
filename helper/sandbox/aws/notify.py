"""What a lifecycle hook sends, in the three shapes consumers meet, and where it goes.

The builders are pure; `deliver` is the one edge (moto's in-process SQS and SNS backends).
Field sets follow ../shared/aws-lifecycle-reference.md, e.g. a direct launch notification:

    {"Origin":"EC2","Destination":"AutoScalingGroup","LifecycleHookName":"my-launch-hook",
     "AccountId":"123456789012","RequestId":"5a062a09-...","LifecycleTransition":"autoscaling:EC2_INSTANCE_LAUNCHING",
     "AutoScalingGroupName":"my-asg","Service":"AWS Auto Scaling","Time":"2023-09-11T03:30:33.136Z",
     "EC2InstanceId":"i-0853dfa8ce1627af9","LifecycleActionToken":"917070d0-...","NotificationMetadata":"opaque"}
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from helper.sandbox.aws.actions import PendingAction

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
TEST_EVENT = "autoscaling:TEST_NOTIFICATION"

DIRECT, SNS, EVENTBRIDGE = "direct", "sns", "eventbridge"
SHAPES = (DIRECT, SNS, EVENTBRIDGE)

# Where the instance moves, as AWS reports it outside warm pools.
ORIGIN_DESTINATION = {
    LAUNCHING: ("EC2", "AutoScalingGroup"),
    TERMINATING: ("AutoScalingGroup", "EC2"),
}
EVENTBRIDGE_DETAIL_TYPE = {
    LAUNCHING: "EC2 Instance-launch Lifecycle Action",
    TERMINATING: "EC2 Instance-terminate Lifecycle Action",
}
SNS_SUBJECT_VERB = {LAUNCHING: "LAUNCHING", TERMINATING: "TERMINATING"}


class TargetNotFound(Exception):
    """The hook's NotificationTargetARN names no queue or topic in the sandbox."""


def format_time(moment: datetime) -> str:
    """AWS's notification time: UTC, milliseconds, a literal Z."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def lifecycle_message(action: PendingAction, metadata: str | None, moment: datetime) -> dict:
    origin, destination = ORIGIN_DESTINATION[action.transition]
    message = {
        "Origin": origin,
        "Destination": destination,
        "LifecycleHookName": action.hook_name,
        "AccountId": action.account_id,
        "RequestId": str(uuid.uuid4()),
        "LifecycleTransition": action.transition,
        "AutoScalingGroupName": action.group_name,
        "Service": "AWS Auto Scaling",
        "Time": format_time(moment),
        "EC2InstanceId": action.instance_id,
        "LifecycleActionToken": action.token,
    }
    if metadata is not None:
        message["NotificationMetadata"] = metadata
    return message


def test_message(account_id: str, group_name: str, group_arn: str, moment: datetime) -> dict:
    return {
        "AccountId": account_id,
        "RequestId": str(uuid.uuid4()),
        "AutoScalingGroupARN": group_arn,
        "AutoScalingGroupName": group_name,
        "Service": "AWS Auto Scaling",
        "Event": TEST_EVENT,
        "Time": format_time(moment),
    }


def sns_envelope(message: dict, subject: str, topic_arn: str, moment: datetime) -> dict:
    """The SNS Notification wrapper; signature fields are placeholders nobody can verify."""
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Subject": subject,
        "Message": json.dumps(message),
        "Timestamp": format_time(moment),
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.example.invalid/SimpleNotificationService.pem",
        "UnsubscribeURL": "https://sns.example.invalid/?Action=Unsubscribe",
    }


def sns_subject(message: dict) -> str:
    if message.get("Event") == TEST_EVENT:
        return f'Auto Scaling: test notification for group "{message["AutoScalingGroupName"]}"'
    verb = SNS_SUBJECT_VERB[message["LifecycleTransition"]]
    return f"Auto Scaling:  Lifecycle action '{verb}' for instance {message['EC2InstanceId']} in progress."


def eventbridge_event(message: dict, region: str, group_arn: str) -> dict:
    dropped = {"Service", "Time", "RequestId", "AccountId"}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": EVENTBRIDGE_DETAIL_TYPE[message["LifecycleTransition"]],
        "source": "aws.autoscaling",
        "account": message["AccountId"],
        "time": message["Time"],
        "region": region,
        "resources": [group_arn],
        "detail": {k: v for k, v in message.items() if k not in dropped},
    }


def render(message: dict, shape: str, *, region: str, group_arn: str, moment: datetime) -> str | None:
    """The body to deliver in `shape`, or None when that route carries no such message
    (EventBridge has no test notification)."""
    if shape == DIRECT:
        return json.dumps(message)
    if shape == SNS:
        topic_arn = f"arn:aws:sns:{region}:{message['AccountId']}:sandbox-lifecycle-notifications"
        return json.dumps(sns_envelope(message, sns_subject(message), topic_arn, moment))
    if shape == EVENTBRIDGE:
        if message.get("Event") == TEST_EVENT:
            return None
        return json.dumps(eventbridge_event(message, region, group_arn))
    raise ValueError(f"unknown delivery shape {shape!r}; expected one of {SHAPES}")


def deliver(target_arn: str, body: str, account_id: str, region: str, copies: int = 1) -> None:
    """Send body to an SQS queue (or publish to an SNS topic) of the same account and region."""
    service = target_arn.split(":")[2] if target_arn.count(":") >= 5 else ""
    if service == "sqs":
        from moto.sqs.models import sqs_backends

        backend = sqs_backends[account_id][region]
        queue = next((q for q in backend.queues.values() if q.queue_arn == target_arn), None)
        if queue is None:
            raise TargetNotFound(target_arn)
        for _ in range(copies):
            backend.send_message(queue.name, body)
    elif service == "sns":
        from moto.sns.models import sns_backends

        topic = sns_backends[account_id][region].topics.get(target_arn)
        if topic is None:
            raise TargetNotFound(target_arn)
        for _ in range(copies):
            topic.publish(body)
    else:
        raise TargetNotFound(target_arn)


def now() -> datetime:
    return datetime.now(timezone.utc)
