"""Parse an SQS message body into one LifecycleAction, whatever the delivery shape.

Three shapes reach the queue (node-termination-handler's sqs-monitor does the same
normalisation): the hook's own JSON (direct), that JSON as a string inside an SNS
envelope, and an EventBridge event whose `detail` carries the fields. Anything else is
a Skip (acknowledge and delete: test notifications, events we don't handle) or a
Malformed (leave it, so the queue's redrive policy moves it to the dead-letter queue).

A real direct notification, kept as the fixture for tests/consumer/test_action.py:

    {"Origin":"EC2","Destination":"AutoScalingGroup","LifecycleHookName":"my-launch-hook",
     "AccountId":"123456789012","RequestId":"5a062a09-2965-8413-43f9-83bd8649c9eb",
     "LifecycleTransition":"autoscaling:EC2_INSTANCE_LAUNCHING","AutoScalingGroupName":"my-asg",
     "Service":"AWS Auto Scaling","Time":"2023-09-11T03:30:33.136Z","EC2InstanceId":"i-0853dfa8ce1627af9",
     "LifecycleActionToken":"917070d0-a303-474b-a36c-a5e38a19de5e","NotificationMetadata":"opaque string"}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

from helper.aws.names import INSTANCE_ID_RE  # used with fullmatch, as every pattern here

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
TEST_NOTIFICATION = "autoscaling:TEST_NOTIFICATION"

# EventBridge detail-type -> the hook's transition name.
EVENTBRIDGE_TYPES = {
    "EC2 Instance-launch Lifecycle Action": LAUNCHING,
    "EC2 Instance-terminate Lifecycle Action": TERMINATING,
}

# Group and hook names: 1-255 characters without control characters.
NAME_RE = re.compile(r"[^\x00-\x1f]{1,255}")
# Tokens are UUIDs; the API takes exactly 36 characters, so anything else could never be
# completed and is better dead-lettered than retried.
TOKEN_RE = re.compile(r"[0-9A-Za-z-]{36}")


@dataclass(frozen=True)
class LifecycleAction:
    """One lifecycle action an Auto Scaling group waits on."""

    group: str
    instance_id: str
    transition: str
    hook: str | None = None
    # None for actions found by reconciliation (no message): completed by instance id.
    token: str | None = None
    origin: str | None = None
    destination: str | None = None
    metadata: str | None = None
    notified_at: datetime | None = None

    @property
    def key(self) -> str:
        """Identity used for de-duplication: the token when we have one."""
        return self.token or f"{self.group}/{self.instance_id}"

    @property
    def launching(self) -> bool:
        return self.transition == LAUNCHING

    @property
    def into_warm_pool(self) -> bool:
        return self.destination == "WarmPool"

    def reference(self) -> str:
        """How a Jenkins build parameter names this action: group:instance:token.

        The group is percent-encoded: AWS allows spaces and colons in its name, and the
        parameter separates references by whitespace and fields by colons. Names made of
        letters, digits and `-_.~` read the same as before encoding.
        """
        return f"{quote(self.group, safe='')}:{self.instance_id}:{self.token or '-'}"


# The token field of a passenger: an instance a build deploys for a launch whose message
# another deployment holds (helper/consumer/passengers.py). Never a token AWS issues (they are
# UUIDs), and never completed by the build's own deployment.
PASSENGER = "+"


def passenger_reference(group: str, instance_id: str) -> str:
    """group:instance:+ for an instance taken along by a build (encoded as reference() does)."""
    return f"{quote(group, safe='')}:{instance_id}:{PASSENGER}"


@dataclass(frozen=True)
class Skip:
    """Acknowledge and delete: nothing to do for this message."""

    reason: str


@dataclass(frozen=True)
class Malformed:
    """Leave on the queue: after maxReceiveCount the redrive policy dead-letters it."""

    reason: str


Parsed = LifecycleAction | Skip | Malformed


def parse_ref(ref: str) -> tuple[str, str, str] | None:
    """(group as written, instance, token) of `group:instance:token`.

    Instance ids and tokens never hold a colon, so the last two fields are unambiguous
    whatever the group's name holds: this also reads references written before group
    names were percent-encoded (LifecycleAction.reference above).
    """
    head, sep, token = ref.rpartition(":")
    group, sep2, instance = head.rpartition(":")
    if not (sep and sep2 and group and instance):
        return None
    return group, instance, token


def _time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # AWS always sends UTC; a time without an offset is read as UTC, not local time.
        if moment.tzinfo is None:
            return moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # unreadable, or beyond datetime's range in UTC
        return None


def _field(body: dict, name: str, pattern: re.Pattern, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{name} missing or invalid")
    return value


def _encodable(value) -> bool:
    """JSON's \ud800 escapes make lone surrogates, which no name can hold and which crash every later
    encode (a log line, a build parameter): refused at parse time (issue 19 item 2)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    return True


def _from_fields(fields: dict, when: str | None) -> Parsed:
    if not _encodable(fields) or not _encodable(when):
        return Malformed("a field holds a lone surrogate (not text)")
    if fields.get("Event") == TEST_NOTIFICATION:
        return Skip("test notification")
    transition = fields.get("LifecycleTransition")
    if transition not in (LAUNCHING, TERMINATING):
        if transition is None and "Event" in fields:
            return Skip(f"event {fields['Event']!r} is not a lifecycle action")
        return Malformed(f"unknown LifecycleTransition {transition!r}")
    try:
        return LifecycleAction(
            group=_field(fields, "AutoScalingGroupName", NAME_RE),
            instance_id=_field(fields, "EC2InstanceId", INSTANCE_ID_RE),
            transition=transition,
            hook=_field(fields, "LifecycleHookName", NAME_RE, required=False),
            token=_field(fields, "LifecycleActionToken", TOKEN_RE),
            origin=fields.get("Origin") if isinstance(fields.get("Origin"), str) else None,
            destination=fields.get("Destination") if isinstance(fields.get("Destination"), str) else None,
            metadata=fields.get("NotificationMetadata") if isinstance(fields.get("NotificationMetadata"), str) else None,
            notified_at=_time(fields.get("Time") or when),
        )
    except ValueError as exc:
        return Malformed(str(exc))


def parse(body: str) -> Parsed:
    """Never raises: every body becomes an action, a Skip or a Malformed."""
    try:
        doc = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return Malformed("body is not JSON")
    if not isinstance(doc, dict):
        return Malformed("body is not a JSON object")
    if doc.get("Type") == "Notification" and "Message" in doc:  # SNS envelope
        if not isinstance(doc["Message"], str):
            return Malformed("SNS Message is not a string")
        inner = parse(doc["Message"])
        return inner
    if doc.get("source") == "aws.autoscaling" and "detail-type" in doc:  # EventBridge
        if not isinstance(doc["detail-type"], str):
            return Malformed("EventBridge detail-type is not a string")
        transition = EVENTBRIDGE_TYPES.get(doc["detail-type"])
        detail = doc.get("detail")
        if transition is None:
            return Skip(f"EventBridge event {doc['detail-type']!r} is not a lifecycle action")
        if not isinstance(detail, dict):
            return Malformed("EventBridge detail is not an object")
        return _from_fields({"LifecycleTransition": transition, **detail}, doc.get("time"))
    return _from_fields(doc, None)
