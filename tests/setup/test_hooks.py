"""`hooks install` / `hooks remove`: the plan as a table over pure inputs, then the commands
against the moto server (with the project's lifecycle-hook extension)."""

from __future__ import annotations

import json

import pytest
import yaml

from helper.cli import main
from helper.errors import ConfigError, HelperError
from helper.sandbox.aws import fleet
from helper.settings import load_config
from helper.setup.hooks import (
    LAUNCHING,
    TERMINATING,
    Desired,
    HookSpec,
    Observed,
    ObservedRole,
    desired,
    plan_install,
    plan_remove,
)

REGION, ACCOUNT = "us-east-1", "123456789012"


# --- plan: pure ----------------------------------------------------------------------------

WANT = Desired(account=ACCOUNT, region=REGION, queue="hooks", role="hooks-hook", visibility_timeout_s=120,
               retention_s=345600, hooks=(HookSpec("web-asg", "deploy-on-launch", LAUNCHING, 900, "ABANDON"),))


def _in_sync(**changes) -> Observed:
    hook = {"LifecycleHookName": "deploy-on-launch", "AutoScalingGroupName": "web-asg",
            "LifecycleTransition": LAUNCHING, "NotificationTargetARN": WANT.queue_arn(), "RoleARN": WANT.role_arn,
            "HeartbeatTimeout": 900, "DefaultResult": "ABANDON", **changes.pop("hook", {})}
    base = dict(groups=frozenset({"web-asg"}), hooks={"web-asg": (hook,)},
                queue={**WANT.queue_attributes(), "QueueArn": WANT.queue_arn()}, dlq=WANT.dlq_attributes(),
                role=ObservedRole(WANT.trust_policy(), {"aws-deploy-helper-hook-notify": WANT.role_policy()},
                                  managed=True),
                managed_queues=frozenset({WANT.queue, WANT.dlq}))
    return Observed(**{**base, **changes})


@pytest.mark.parametrize("seen, expected", [
    (_in_sync(), []),
    (_in_sync(hook={"HeartbeatTimeout": 30}), ["update_hook"]),
    (_in_sync(hooks={"web-asg": ()}), ["create_hook"]),
    (_in_sync(queue={**WANT.queue_attributes(), "VisibilityTimeout": "300"}), []),  # longer is fine
    (_in_sync(queue={**WANT.queue_attributes(), "VisibilityTimeout": "30"}), ["update_queue"]),
    (_in_sync(queue={k: v for k, v in WANT.queue_attributes().items() if k != "RedrivePolicy"}), ["update_queue"]),
    (_in_sync(queue=None), ["create_queue"]),
    (_in_sync(dlq=None), ["create_queue"]),
    (_in_sync(role=None), ["create_role"]),
    (_in_sync(role=ObservedRole(WANT.trust_policy(), {}, managed=True)), ["update_role_policy"]),
], ids=["in-sync", "short-heartbeat", "no-hook", "longer-visibility", "short-visibility",
        "no-redrive", "no-queue", "no-dlq", "no-role", "no-inline-policy"])
def test_plan_install_changes_only_what_differs(seen, expected):
    assert [c.action for c in plan_install(WANT, seen)] == expected


def test_plan_install_refuses_groups_that_do_not_exist():
    with pytest.raises(HelperError, match="web-asg not found"):
        plan_install(WANT, _in_sync(groups=frozenset()))


def test_plan_install_refuses_an_existing_fifo_queue():
    with pytest.raises(HelperError, match="FIFO"):
        plan_install(WANT, _in_sync(queue={**WANT.queue_attributes(), "FifoQueue": "true"}))


def test_plan_remove_goes_hooks_then_queues_then_role():
    assert [c.action for c in plan_remove(WANT, _in_sync())] == [
        "delete_hook", "delete_queue", "delete_queue", "delete_role"]
    assert plan_remove(WANT, Observed(groups=frozenset({"web-asg"}), hooks={})) == []


# Someone else's: the same names, without the managed-by tag.
FOREIGN_ROLE = ObservedRole({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}, {}, managed=False)


@pytest.mark.parametrize("seen, subject", [
    (_in_sync(role=FOREIGN_ROLE), "role hooks-hook"),
    (_in_sync(queue={"VisibilityTimeout": "30"}, managed_queues=frozenset({"hooks-dlq"})), "queue hooks"),
    (_in_sync(dlq={"MessageRetentionPeriod": "60"}, managed_queues=frozenset({"hooks"})),
     "dead-letter queue hooks-dlq"),
], ids=["role", "queue", "dlq"])
def test_install_refuses_to_change_a_role_or_queue_it_did_not_create(seen, subject):
    with pytest.raises(HelperError) as error:
        plan_install(WANT, seen)
    message = str(error.value)
    assert message.startswith(f"{subject} exists and was not created by aws-deploy-helper") and "\n" not in message
    assert "managed-by=aws-deploy-helper" in message and "another name" in message


def test_install_uses_a_role_and_queues_it_did_not_create_when_they_already_fit():
    seen = _in_sync(role=ObservedRole(WANT.trust_policy(), {"aws-deploy-helper-hook-notify": WANT.role_policy()}),
                    managed_queues=frozenset())
    assert plan_install(WANT, seen) == []


@pytest.mark.parametrize("seen, subject", [
    (_in_sync(role=FOREIGN_ROLE), "role hooks-hook"),
    (_in_sync(managed_queues=frozenset({"hooks-dlq"})), "queue hooks"),
    (_in_sync(managed_queues=frozenset({"hooks"})), "dead-letter queue hooks-dlq"),
], ids=["role", "queue", "dlq"])
def test_remove_refuses_to_delete_a_role_or_queue_it_did_not_create(seen, subject):
    for force in (False, True):
        with pytest.raises(HelperError, match=f"^{subject} exists and was not created by aws-deploy-helper"):
            plan_remove(WANT, seen, force=force)


def test_remove_refuses_a_queue_holding_messages_unless_forced():
    seen = _in_sync(queue={**WANT.queue_attributes(), "ApproximateNumberOfMessages": "2",
                           "ApproximateNumberOfMessagesNotVisible": "1", "ApproximateNumberOfMessagesDelayed": "0"})
    with pytest.raises(HelperError, match=r"^queue hooks holds 3 message\(s\).*--force"):
        plan_remove(WANT, seen)
    assert [c.action for c in plan_remove(WANT, seen, force=True)] == [
        "delete_hook", "delete_queue", "delete_queue", "delete_role"]


# --- the commands against moto ---------------------------------------------------------------


def _config(tmp_path, aws, **lifecycle) -> str:
    section = {"queue_url": f"{aws}/{ACCOUNT}/deploy-hooks", "region": REGION,
               "jenkins": {"url": "http://127.0.0.1:9/", "job": "deploy"},
               "groups": {"web-asg": "web", "jobs-asg": {"site": "jobs", "terminate_job": "drain"}}, **lifecycle}
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump({"sites": {"web": {"asg": "web-asg"}, "jobs": {"asg": "jobs-asg"}},
                                    "lifecycle": section}))
    return str(path)


@pytest.fixture
def world(aws, tmp_path):
    for group in ("web-asg", "jobs-asg"):
        fleet.auto_scaling_site(aws, REGION, group, 1)
    return _config(tmp_path, aws)


def _state(aws) -> dict:
    """Everything install creates, as plain data, to compare runs."""
    sqs, iam, asg = (fleet.client(s, aws, REGION) for s in ("sqs", "iam", "autoscaling"))
    queues = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        queues[url.rsplit("/", 1)[-1]] = {k: v for k, v in attrs.items() if not k.endswith("Timestamp")}
    roles = {r["RoleName"]: sorted(iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"])
             for r in iam.list_roles()["Roles"]}
    hooks = {(h["AutoScalingGroupName"], h["LifecycleHookName"]): h
             for g in ("web-asg", "jobs-asg") for h in asg.describe_lifecycle_hooks(AutoScalingGroupName=g)[
                 "LifecycleHooks"]}
    return {"queues": queues, "roles": roles, "hooks": hooks}


def _run(capsys, *argv) -> tuple[int, list[str]]:
    code = main(list(argv))
    return code, capsys.readouterr().out.splitlines()


def test_install_creates_queue_dlq_role_and_hooks_as_configured(world, aws, capsys):
    code, out = _run(capsys, "hooks", "install", "-c", world)
    assert code == 0 and out[-1] == "made 6 change(s)"
    state = _state(aws)
    queue, dlq = state["queues"]["deploy-hooks"], state["queues"]["deploy-hooks-dlq"]
    assert "FifoQueue" not in queue and int(queue["VisibilityTimeout"]) >= 120
    assert int(queue["MessageRetentionPeriod"]) >= 4 * 86400
    assert json.loads(queue["RedrivePolicy"]) == {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 5}
    policy = json.loads(queue["Policy"])["Statement"]
    assert [s["Principal"] for s in policy] == [{"AWS": f"arn:aws:iam::{ACCOUNT}:role/deploy-hooks-hook"}]
    assert state["roles"] == {"deploy-hooks-hook": ["aws-deploy-helper-hook-notify"]}
    trust = fleet.client("iam", aws, REGION).get_role(RoleName="deploy-hooks-hook")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "autoscaling.amazonaws.com"}
    hooks = state["hooks"]
    assert sorted(hooks) == [("jobs-asg", "deploy-on-launch"), ("jobs-asg", "deploy-on-terminate"),
                             ("web-asg", "deploy-on-launch")]
    launch = hooks[("web-asg", "deploy-on-launch")]
    assert (launch["LifecycleTransition"], launch["NotificationTargetARN"], launch["HeartbeatTimeout"],
            launch["DefaultResult"]) == (LAUNCHING, queue["QueueArn"], 900, "ABANDON")
    assert hooks[("jobs-asg", "deploy-on-terminate")]["LifecycleTransition"] == TERMINATING


def test_second_install_changes_nothing_and_says_so(world, aws, capsys):
    _run(capsys, "hooks", "install", "-c", world)
    before = _state(aws)
    code, out = _run(capsys, "hooks", "install", "-c", world)
    assert code == 0 and len(out) == 1 and out[0].startswith("no changes:")
    assert _state(aws) == before


def test_dry_run_prints_one_line_per_change_and_changes_nothing(world, aws, capsys):
    before = _state(aws)
    code, out = _run(capsys, "hooks", "install", "-c", world, "--dry-run")
    assert code == 0 and all(line.startswith("would ") for line in out)
    assert len(out) == 7 and out[-1] == "would make 6 change(s)"
    assert _state(aws) == before


def test_a_same_named_hook_of_someone_else_is_neither_retargeted_nor_removed():
    """Issue 19 item 18: install retargeted and remove deleted a hook that pointed at another queue."""
    seen = _in_sync(hook={"NotificationTargetARN": "arn:aws:sqs:us-east-1:123456789012:other",
                          "RoleARN": "arn:aws:iam::123456789012:role/someone-elses"})
    for plan in (plan_install, plan_remove):
        with pytest.raises(HelperError, match="hook web-asg/deploy-on-launch exists and notifies .* left alone"):
            plan(WANT, seen)
    # Notifying our queue, it is ours whatever role it was made with: brought in line.
    ours = _in_sync(hook={"RoleARN": "arn:aws:iam::123456789012:role/made-by-hand"})
    assert [c.action for c in plan_install(WANT, ours)] == ["update_hook"]


def test_install_leaves_a_hook_pointing_at_another_queue_alone(world, aws, capsys):
    _run(capsys, "hooks", "install", "-c", world)
    other = fleet.lifecycle_queue(aws, REGION, "other")[1]
    fleet.launch_hook(aws, REGION, "web-asg", other)
    for command in ("install", "remove"):
        code = main(["hooks", command, "-c", world])
        err = capsys.readouterr().err.strip().splitlines()
        # Exit 2, as a config error (issue 19 item 18, second pass): the way out is another hook name.
        assert code == 2 and len(err) == 1 and "hook web-asg/deploy-on-launch exists" in err[0], err
        assert f"notifies {other}" in err[0] and "role" in err[0], err
    assert _state(aws)["hooks"][("web-asg", "deploy-on-launch")]["NotificationTargetARN"] == other


def _drain(aws, name: str = "deploy-hooks") -> str:
    """What a running consumer does with the hooks' test notifications."""
    sqs = fleet.client("sqs", aws, REGION)
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    sqs.purge_queue(QueueUrl=url)
    return url


def test_remove_deletes_hooks_queue_dlq_and_role_and_is_idempotent(world, aws, capsys):
    _run(capsys, "hooks", "install", "-c", world)
    _drain(aws)
    code, out = _run(capsys, "hooks", "remove", "-c", world)
    assert code == 0 and [line.split(" ", 1)[0] for line in out[:-1]] == ["delete"] * 6
    assert _state(aws) == {"queues": {}, "roles": {}, "hooks": {}}
    code, out = _run(capsys, "hooks", "remove", "-c", world)
    assert code == 0 and out[0].startswith("no changes:")


def test_install_reports_a_missing_group_in_one_line(aws, tmp_path, capsys):
    fleet.auto_scaling_site(aws, REGION, "web-asg", 1)
    code = main(["hooks", "install", "-c", _config(tmp_path, aws)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "jobs-asg not found" in err


def test_custom_hook_settings_come_from_the_lifecycle_section(aws, tmp_path):
    path = _config(tmp_path, aws, hook_name="on-launch", hook_heartbeat_timeout_s=1200,
                   hook_default_result="CONTINUE", hook_role_name="asg-notify")
    want = desired(load_config(path).lifecycle, ACCOUNT)
    assert want.role == "asg-notify"
    assert HookSpec("web-asg", "on-launch", LAUNCHING, 1200, "CONTINUE") in want.hooks


@pytest.mark.parametrize("lifecycle, message", [
    ({"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/hooks.fifo"}, "FIFO"),
    ({"queue_url": "https://sqs.us-east-1.amazonaws.com/999999999999/hooks"}, "account 999999999999"),
])
def test_desired_refuses_queues_hooks_cannot_use(aws, tmp_path, lifecycle, message):
    with pytest.raises(ConfigError, match=message):
        desired(load_config(_config(tmp_path, aws, **lifecycle)).lifecycle, ACCOUNT)


def test_hook_heartbeat_timeout_outside_aws_range_is_a_config_error(aws, tmp_path):
    with pytest.raises(ConfigError, match="hook_heartbeat_timeout_s"):
        load_config(_config(tmp_path, aws, hook_heartbeat_timeout_s=10))


# --- what install did not create (issue 9, item 21) -------------------------------------------------

MANAGED = {"managed-by": "aws-deploy-helper"}
SNS_STATEMENT = {"Sid": "FromTopic", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                 "Action": "sqs:SendMessage", "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:deploy-hooks"}
EC2_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                      "Action": "sts:AssumeRole"}]}


def _foreign_role(aws, name: str = "deploy-hooks-hook") -> None:
    iam = fleet.client("iam", aws, REGION)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    iam.put_role_policy(RoleName=name, PolicyName="app", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))


def _foreign_queue(aws, name: str = "deploy-hooks") -> str:
    sqs = fleet.client("sqs", aws, REGION)
    url = sqs.create_queue(QueueName=name, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17", "Statement": [SNS_STATEMENT]})})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="someone else's work")
    return url


def _queue_policy(aws, name: str = "deploy-hooks") -> dict:
    sqs = fleet.client("sqs", aws, REGION)
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])


def test_install_tags_the_role_and_queues_it_creates(world, aws, capsys):
    _run(capsys, "hooks", "install", "-c", world)
    sqs, iam = fleet.client("sqs", aws, REGION), fleet.client("iam", aws, REGION)
    for name in ("deploy-hooks", "deploy-hooks-dlq"):
        assert sqs.list_queue_tags(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])["Tags"] == MANAGED
    assert {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName="deploy-hooks-hook")["Tags"]} == MANAGED


@pytest.mark.parametrize("foreign, subject", [("role", "role deploy-hooks-hook"), ("queue", "queue deploy-hooks")])
def test_install_leaves_a_foreign_role_trust_and_queue_policy_alone(world, aws, capsys, foreign, subject):
    (_foreign_role if foreign == "role" else _foreign_queue)(aws)
    before = _state(aws)
    code = main(["hooks", "install", "-c", world])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"aws-deploy-helper: {subject} exists and was not created by aws-deploy-helper"), err
    assert _state(aws) == before, "nothing changed, not even what could have been"
    if foreign == "role":
        trust = fleet.client("iam", aws, REGION).get_role(RoleName="deploy-hooks-hook")["Role"]
        assert trust["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    else:
        assert _queue_policy(aws)["Statement"] == [SNS_STATEMENT]


def test_install_adopts_a_queue_once_its_owner_tags_it(world, aws, capsys):
    url = _foreign_queue(aws)
    fleet.client("sqs", aws, REGION).tag_queue(QueueUrl=url, Tags=MANAGED)
    code, out = _run(capsys, "hooks", "install", "-c", world)
    assert code == 0 and any(line.startswith("update queue deploy-hooks: set ") for line in out)


@pytest.mark.parametrize("force", [False, True])
def test_remove_leaves_a_role_and_queue_it_did_not_create(world, aws, capsys, force):
    _foreign_role(aws)
    _foreign_queue(aws)
    before = _state(aws)
    code = main(["hooks", "remove", "-c", world] + (["--force"] if force else []))
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "was not created by aws-deploy-helper" in err
    assert _state(aws) == before
    assert fleet.client("iam", aws, REGION).list_role_policies(RoleName="deploy-hooks-hook")["PolicyNames"] == ["app"]


def test_remove_keeps_a_queue_holding_messages_unless_forced(world, aws, capsys):
    _run(capsys, "hooks", "install", "-c", world)
    fleet.client("sqs", aws, REGION).send_message(QueueUrl=_drain(aws), MessageBody="pending action")
    before = _state(aws)
    code = main(["hooks", "remove", "-c", world])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("aws-deploy-helper: queue deploy-hooks holds 1 message(s)") and "--force" in err
    assert _state(aws) == before, "not even the hooks were deleted"
    code, _ = _run(capsys, "hooks", "remove", "-c", world, "--force")
    assert code == 0 and _state(aws) == {"queues": {}, "roles": {}, "hooks": {}}
