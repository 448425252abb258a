"""parse(): every SQS body becomes a LifecycleAction, a Skip or a Malformed, and never raises.

The fixtures are the payloads in ../shared/aws-lifecycle-reference.md, pasted as AWS sends
them. Where the reference elides a value ("71514b9d-..."), a value of the real shape stands in.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import pytest

from helper.consumer.action import LAUNCHING, TERMINATING, LifecycleAction, Malformed, Skip, parse

DIRECT_LAUNCH = """\
{"Origin":"EC2","Destination":"AutoScalingGroup","LifecycleHookName":"my-launch-hook",
 "AccountId":"123456789012","RequestId":"5a062a09-2965-8413-43f9-83bd8649c9eb",
 "LifecycleTransition":"autoscaling:EC2_INSTANCE_LAUNCHING","AutoScalingGroupName":"my-asg",
 "Service":"AWS Auto Scaling","Time":"2023-09-11T03:30:33.136Z","EC2InstanceId":"i-0853dfa8ce1627af9",
 "LifecycleActionToken":"917070d0-a303-474b-a36c-a5e38a19de5e","NotificationMetadata":"opaque string"}
"""

TEST_NOTIFICATION = """\
{"AccountId":"123456789012","RequestId":"b36d6757-a93e-4e2f-9f3a-2b5c3c6a8f11",
 "AutoScalingGroupARN":"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:0e9c4e52-1c27-4b4c-a3c0-5c8f2d7f3c9a:autoScalingGroupName/my-asg",
 "AutoScalingGroupName":"my-asg","Service":"AWS Auto Scaling","Event":"autoscaling:TEST_NOTIFICATION",
 "Time":"2018-05-14T22:39:45.555Z"}
"""

EVENTBRIDGE_LAUNCH = """\
{"version":"0","id":"12345678-1234-1234-1234-123456789012","detail-type":"EC2 Instance-launch Lifecycle Action",
 "source":"aws.autoscaling","account":"123456789012","time":"2021-01-13T00:12:37.214Z","region":"us-west-2",
 "resources":["arn:aws:autoscaling:us-west-2:123456789012:autoScalingGroup:0e9c4e52-1c27-4b4c-a3c0-5c8f2d7f3c9a:autoScalingGroupName/my-asg"],
 "detail":{"LifecycleActionToken":"71514b9d-6a40-4b26-8523-05e7eEXAMPLE","AutoScalingGroupName":"my-asg",
  "LifecycleHookName":"my-launch-lifecycle-hook","EC2InstanceId":"i-1234567890abcdef0",
  "LifecycleTransition":"autoscaling:EC2_INSTANCE_LAUNCHING","NotificationMetadata":"additional-info",
  "Origin":"EC2","Destination":"WarmPool"}}
"""

DIRECT_TERMINATE = """\
{"Origin":"AutoScalingGroup","Destination":"EC2","LifecycleHookName":"my-terminate-hook",
 "AccountId":"123456789012","RequestId":"7c1a8e3d-55a1-4f3e-9a51-4f0f6d2c1b77",
 "LifecycleTransition":"autoscaling:EC2_INSTANCE_TERMINATING","AutoScalingGroupName":"my-asg",
 "Service":"AWS Auto Scaling","Time":"2023-09-11T04:00:00.001Z","EC2InstanceId":"i-0853dfa8ce1627af9",
 "LifecycleActionToken":"c2d8a4f1-1b3e-4c5d-8e9f-0a1b2c3d4e5f"}
"""

EVENTBRIDGE_TERMINATE = json.dumps({
    **json.loads(EVENTBRIDGE_LAUNCH), "detail-type": "EC2 Instance-terminate Lifecycle Action",
    "detail": {"LifecycleActionToken": "0b9d2f6e-3c1a-4e8b-9f7d-2a6c4e8b0d1f", "AutoScalingGroupName": "my-asg",
               "LifecycleHookName": "my-terminate-hook", "EC2InstanceId": "i-1234567890abcdef0",
               "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
               "Origin": "AutoScalingGroup", "Destination": "EC2"},
})


def sns(message: str, **fields) -> str:
    """`message` in the SNS Notification envelope, as an SNS-subscribed queue receives it."""
    return json.dumps({
        "Type": "Notification", "MessageId": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:asg-hooks",
        "Subject": "Auto Scaling:  Lifecycle action 'LAUNCHING' for instance i-0853dfa8ce1627af9 in progress.",
        "Message": message, "Timestamp": "2023-09-11T03:30:33.200Z", "SignatureVersion": "1",
        "Signature": "EXAMPLE", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe", **fields,
    })


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


LAUNCH = LifecycleAction(
    group="my-asg", instance_id="i-0853dfa8ce1627af9", transition=LAUNCHING, hook="my-launch-hook",
    token="917070d0-a303-474b-a36c-a5e38a19de5e", origin="EC2", destination="AutoScalingGroup",
    metadata="opaque string", notified_at=utc(2023, 9, 11, 3, 30, 33, 136000),
)
WARM_LAUNCH = LifecycleAction(
    group="my-asg", instance_id="i-1234567890abcdef0", transition=LAUNCHING, hook="my-launch-lifecycle-hook",
    token="71514b9d-6a40-4b26-8523-05e7eEXAMPLE", origin="EC2", destination="WarmPool",
    metadata="additional-info", notified_at=utc(2021, 1, 13, 0, 12, 37, 214000),  # the event's `time`
)
TERMINATE = LifecycleAction(
    group="my-asg", instance_id="i-0853dfa8ce1627af9", transition=TERMINATING, hook="my-terminate-hook",
    token="c2d8a4f1-1b3e-4c5d-8e9f-0a1b2c3d4e5f", origin="AutoScalingGroup", destination="EC2",
    metadata=None, notified_at=utc(2023, 9, 11, 4, 0, 0, 1000),
)
EB_TERMINATE = LifecycleAction(
    group="my-asg", instance_id="i-1234567890abcdef0", transition=TERMINATING, hook="my-terminate-hook",
    token="0b9d2f6e-3c1a-4e8b-9f7d-2a6c4e8b0d1f", origin="AutoScalingGroup", destination="EC2",
    metadata=None, notified_at=utc(2021, 1, 13, 0, 12, 37, 214000),
)


@pytest.mark.parametrize("body, expected", [
    pytest.param(DIRECT_LAUNCH, LAUNCH, id="direct launch"),
    pytest.param(sns(DIRECT_LAUNCH), LAUNCH, id="SNS-wrapped launch"),
    pytest.param(EVENTBRIDGE_LAUNCH, WARM_LAUNCH, id="EventBridge launch into the warm pool"),
    pytest.param(DIRECT_TERMINATE, TERMINATE, id="direct terminate"),
    pytest.param(sns(DIRECT_TERMINATE), TERMINATE, id="SNS-wrapped terminate"),
    pytest.param(EVENTBRIDGE_TERMINATE, EB_TERMINATE, id="EventBridge terminate"),
])
def test_real_payloads_parse_into_one_action(body, expected):
    assert parse(body) == expected


def test_the_three_shapes_of_one_launch_agree():
    detail = {k: v for k, v in json.loads(DIRECT_LAUNCH).items()
              if k not in ("Service", "Time", "RequestId", "AccountId")}
    event = json.dumps({**json.loads(EVENTBRIDGE_LAUNCH), "detail": detail, "time": "2023-09-11T03:30:33.136Z"})
    assert parse(DIRECT_LAUNCH) == parse(sns(DIRECT_LAUNCH)) == parse(event) == LAUNCH


@pytest.mark.parametrize("body", [
    pytest.param(TEST_NOTIFICATION, id="test notification"),
    pytest.param(sns(TEST_NOTIFICATION), id="SNS-wrapped test notification"),
    pytest.param(json.dumps({**json.loads(TEST_NOTIFICATION), "Event": "autoscaling:EC2_INSTANCE_LAUNCH"}),
                 id="plain Auto Scaling launch event"),
    pytest.param(json.dumps({**json.loads(EVENTBRIDGE_LAUNCH), "detail-type": "EC2 Instance Launch Successful"}),
                 id="EventBridge launch successful"),
])
def test_notifications_that_are_not_actions_are_skipped(body):
    assert isinstance(parse(body), Skip)


def test_test_notification_says_so():
    assert parse(TEST_NOTIFICATION) == Skip("test notification")


def direct(**changes) -> str:
    """The direct launch with fields changed; a value of ... removes the field."""
    fields = {**json.loads(DIRECT_LAUNCH), **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not ...})


NESTING = 100_000  # far past the interpreter's recursion limit


@pytest.mark.parametrize("body, reason", [
    pytest.param("not json", "body is not JSON", id="not JSON"),
    pytest.param("", "body is not JSON", id="empty"),
    pytest.param(DIRECT_LAUNCH[:-20], "body is not JSON", id="truncated"),
    pytest.param("\ufeff" + DIRECT_LAUNCH, "body is not JSON", id="byte order mark"),
    pytest.param(b"\xff\xfe\xfa{", "body is not JSON", id="bytes that are not UTF-8"),
    pytest.param("[1, 2]", "body is not a JSON object", id="array"),
    pytest.param("42", "body is not a JSON object", id="number"),
    pytest.param('"i-0853dfa8ce1627af9"', "body is not a JSON object", id="string"),
    pytest.param("null", "body is not a JSON object", id="null"),
    pytest.param(direct(LifecycleActionToken=...), "LifecycleActionToken missing or invalid", id="missing token"),
    pytest.param(direct(LifecycleActionToken=""), "LifecycleActionToken missing or invalid", id="empty token"),
    pytest.param(direct(LifecycleActionToken="a b"), "LifecycleActionToken missing or invalid",
                 id="token with a space (would split LIFECYCLE_ACTIONS)"),
    pytest.param(direct(LifecycleActionToken="x" * 129), "LifecycleActionToken missing or invalid", id="long token"),
    pytest.param(direct(EC2InstanceId="i-XYZ"), "EC2InstanceId missing or invalid", id="bad instance id"),
    pytest.param(direct(EC2InstanceId=...), "EC2InstanceId missing or invalid", id="missing instance id"),
    pytest.param(direct(AutoScalingGroupName=...), "AutoScalingGroupName missing or invalid", id="missing group"),
    pytest.param(direct(AutoScalingGroupName="web\x00asg"), "AutoScalingGroupName missing or invalid",
                 id="group with a control character"),
    pytest.param(direct(AutoScalingGroupName="g" * 256), "AutoScalingGroupName missing or invalid", id="long group"),
    pytest.param(direct(LifecycleTransition="autoscaling:EC2_INSTANCE_REBOOTING"), "unknown LifecycleTransition",
                 id="unknown transition"),
    pytest.param(direct(LifecycleTransition=...), "unknown LifecycleTransition None", id="missing transition"),
    pytest.param(sns({"not": "a string"}), "SNS Message is not a string", id="SNS Message an object"),
    pytest.param(sns(5), "SNS Message is not a string", id="SNS Message a number"),
    pytest.param(sns("not json"), "body is not JSON", id="SNS Message not JSON"),
    pytest.param(json.dumps({**json.loads(EVENTBRIDGE_LAUNCH), "detail": "{}"}), "EventBridge detail is not an object",
                 id="EventBridge detail a string"),
    pytest.param(json.dumps({k: v for k, v in json.loads(EVENTBRIDGE_LAUNCH).items() if k != "detail"}),
                 "EventBridge detail is not an object", id="EventBridge without detail"),
    pytest.param("[" * NESTING + "]" * NESTING, "body is not JSON", id="deeply nested array"),
    pytest.param('{"a":' * NESTING + "1" + "}" * NESTING, "body is not JSON", id="deeply nested object"),
    pytest.param(sns("[" * NESTING + "]" * NESTING), "body is not JSON", id="deep nesting inside SNS"),
    pytest.param("x" * (1 << 20), "body is not JSON", id="huge body"),
    pytest.param("[" + "0," * (1 << 19) + "0]", "body is not a JSON object", id="huge array"),
    pytest.param(direct(EC2InstanceId="i-0853dfa8ce1627af\ud800"), "lone surrogate",
                 id="lone surrogate in instance id"),
    # Issue 19 item 2: the group name passed the name check and crashed reference() on every redelivery.
    pytest.param(direct(AutoScalingGroupName="x\ud800"), "lone surrogate", id="lone surrogate in the group"),
    pytest.param(direct(LifecycleHookName="\udfff"), "lone surrogate", id="lone surrogate in the hook"),
    pytest.param(direct(NotificationMetadata="meta\ud800"), "lone surrogate", id="lone surrogate in the metadata"),
    pytest.param(sns(direct(AutoScalingGroupName="x\ud800")), "lone surrogate", id="lone surrogate inside SNS"),
    pytest.param(direct(EC2InstanceId=1234567890), "EC2InstanceId missing or invalid", id="instance id a number"),
    pytest.param(direct(LifecycleActionToken=917070), "LifecycleActionToken missing or invalid", id="token a number"),
    pytest.param(direct(AutoScalingGroupName=7), "AutoScalingGroupName missing or invalid", id="group a number"),
    pytest.param(direct(LifecycleHookName=7), "LifecycleHookName missing or invalid", id="hook a number"),
    pytest.param(direct(LifecycleTransition=1), "unknown LifecycleTransition 1", id="transition a number"),
    pytest.param(direct(LifecycleTransition=["autoscaling:EC2_INSTANCE_LAUNCHING"]), "unknown LifecycleTransition",
                 id="transition a list"),
])
def test_bad_bodies_are_malformed_with_a_reason(body, reason):
    parsed = parse(body)
    assert isinstance(parsed, Malformed)
    assert reason in parsed.reason


@pytest.mark.parametrize("changes, expected", [
    pytest.param({"Origin": 5, "Destination": None, "NotificationMetadata": ["x"]},
                 {"origin": None, "destination": None, "metadata": None}, id="optional fields of the wrong type"),
    pytest.param({"Time": "yesterday"}, {"notified_at": None}, id="unreadable time"),
    pytest.param({"Time": 1694403033}, {"notified_at": None}, id="time a number"),
    pytest.param({"LifecycleHookName": ...}, {"hook": None}, id="no hook name"),
])
def test_optional_fields_degrade_to_none(changes, expected):
    parsed = parse(direct(**changes))
    assert isinstance(parsed, LifecycleAction)
    assert {name: getattr(parsed, name) for name in expected} == expected


# Bodies that once crashed or fooled the parser.
@pytest.mark.parametrize("detail_type", [[1], {"a": 1}], ids=["list", "object"])
def test_eventbridge_detail_type_not_a_string_is_not_an_action(detail_type):
    body = json.dumps({**json.loads(EVENTBRIDGE_LAUNCH), "detail-type": detail_type})
    assert isinstance(parse(body), (Skip, Malformed))


@pytest.mark.parametrize("field", ["EC2InstanceId", "LifecycleActionToken", "AutoScalingGroupName"])
def test_a_trailing_newline_is_not_part_of_a_valid_field(field):
    # A token "abc\n" would not survive LIFECYCLE_ACTIONS' whitespace split, nor an id the INSTANCE_IDS list.
    value = json.loads(DIRECT_LAUNCH)[field] + "\n"
    assert isinstance(parse(direct(**{field: value})), Malformed)


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_time_at_the_edge_of_the_calendar_is_not_a_time(time):
    parsed = parse(direct(Time=time))
    assert isinstance(parsed, LifecycleAction) and parsed.notified_at is None


# --- never raises ------------------------------------------------------------------------------

SEED = 20240611
ROUNDS = 3000
# JSON's own characters, pieces of real payloads, and bytes that are not UTF-8.
FRAGMENTS = [
    "{", "}", "[", "]", ":", ",", '"', "\\", "\\u", "d800", "0", "-1", "1e999", "1.5", "true", "false",
    "null", " ", "\n", '"Type"', '"Notification"', '"Message"', '"source"', '"aws.autoscaling"',
    '"detail-type"', '"detail"', '"EC2 Instance-launch Lifecycle Action"', '"LifecycleTransition"',
    '"autoscaling:EC2_INSTANCE_LAUNCHING"', '"EC2InstanceId"', '"i-0853dfa8ce1627af9"', '"Time"',
    '"2023-09-11T03:30:33.136Z"', '"LifecycleActionToken"', '"Event"', "\x00", "\ud800", "\xff",
]


def soup(rng: random.Random) -> str:
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 40)))


def test_random_json_ish_text_and_bytes_never_raise():
    rng = random.Random(SEED)
    for _ in range(ROUNDS):
        text = soup(rng)
        for body in (text, text.encode("utf-8", "surrogatepass"), bytes(rng.getrandbits(8) for _ in range(16))):
            assert isinstance(parse(body), (LifecycleAction, Skip, Malformed)), body


def random_value(rng: random.Random, depth: int = 0):
    kinds = ["str", "int", "float", "bool", "null", "list", "object", "time", "id"]
    kind = rng.choice(kinds if depth < 3 else kinds[:5])
    return {
        "str": lambda: soup(rng),
        "int": lambda: rng.randint(-2**70, 2**70),
        "float": lambda: rng.uniform(-1e308, 1e308),
        "bool": lambda: rng.random() < 0.5,
        "null": lambda: None,
        "list": lambda: [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
        "object": lambda: {soup(rng): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))},
        "time": lambda: f"{rng.randint(1, 9999):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                        f"T00:00:00{rng.choice(['Z', '+14:00', '-14:00', ''])}",
        "id": lambda: rng.choice(["i-", "i-0", "i-" + "a" * 17, "i-" + "f" * 18]),
    }[kind]()


def inner_doc(doc: dict):
    """The SNS Message as JSON, when it is a JSON string."""
    try:
        return json.loads(doc.get("Message"))
    except (TypeError, ValueError):
        return None


def mutate(doc: dict, rng: random.Random) -> dict:
    doc = dict(doc)
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(list(doc) + ["Message", "detail", "detail-type", "Event"])
        if rng.random() < 0.2:
            doc.pop(key, None)
        elif isinstance(doc.get(key), dict):
            doc[key] = mutate(doc[key], rng)
        elif key == "Message" and isinstance(inner_doc(doc), dict) and rng.random() < 0.5:
            doc[key] = json.dumps(mutate(inner_doc(doc), rng))
        else:
            doc[key] = random_value(rng)
    return doc


def test_mutated_real_payloads_never_raise():
    rng = random.Random(SEED)
    payloads = [json.loads(b) for b in (DIRECT_LAUNCH, TEST_NOTIFICATION, EVENTBRIDGE_LAUNCH, DIRECT_TERMINATE,
                                        sns(DIRECT_LAUNCH))]
    for _ in range(ROUNDS):
        body = json.dumps(mutate(rng.choice(payloads), rng))
        assert isinstance(parse(body), (LifecycleAction, Skip, Malformed)), body


# --- reference() and key ----------------------------------------------------------------------

RECONCILED = LifecycleAction(group="my-asg", instance_id="i-0853dfa8ce1627af9", transition=LAUNCHING)


@pytest.mark.parametrize("action, reference, key", [
    pytest.param(LAUNCH, "my-asg:i-0853dfa8ce1627af9:917070d0-a303-474b-a36c-a5e38a19de5e",
                 "917070d0-a303-474b-a36c-a5e38a19de5e", id="from a notification"),
    pytest.param(RECONCILED, "my-asg:i-0853dfa8ce1627af9:-", "my-asg/i-0853dfa8ce1627af9",
                 id="reconciled, no token"),
])
def test_reference_and_key(action, reference, key):
    assert action.reference() == reference
    assert action.key == key


def test_flags_follow_transition_and_destination():
    assert LAUNCH.launching and not LAUNCH.into_warm_pool
    assert WARM_LAUNCH.launching and WARM_LAUNCH.into_warm_pool
    assert not TERMINATE.launching


@pytest.mark.parametrize("token", ["abc-123", "0b1e6a2c-0000-4000-8000-00000000beef0"], ids=["short", "long"])
def test_a_token_the_api_would_refuse_is_malformed(token):
    # CompleteLifecycleAction takes exactly 36 characters: such an action could never be completed.
    assert isinstance(parse(direct(LifecycleActionToken=token)), Malformed)
