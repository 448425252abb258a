"""What the consumer trusts (issue 9, the scale-up path): only builds that are exactly its
own deploy, only actions Auto Scaling confirms, and Jenkins however its URL is spelled.
End to end against the sandbox, like tests/consumer/test_consumer.py."""

from __future__ import annotations

import json
import uuid

import pytest

import jenkins
from tests.scenario import GROUP, JENKINS_TOKEN, JENKINS_USER, JOB, OTHER_TOKEN, OTHER_USER, wait_for
from tests.units import counted

# --- item 1: adopt only what the consumer itself would have queued --------------------------------

def consumers_parameters(instance: str, token: str) -> dict[str, str]:
    """Exactly what helper/consumer/deployment.py queues for one launch of web-asg."""
    return {"SITE": "web", "INSTANCE_IDS": instance, "REVISION": "", "LIFECYCLE_ACTIONS": f"{GROUP}:{instance}:{token}",
            "DRY_RUN": "false", "SKIP_TESTS": "true"}


NOT_OURS = {  # one difference from the consumer's own build each, and who queued it
    "dry run": ({"DRY_RUN": "true"}, JENKINS_USER),
    "another site": ({"SITE": "api"}, JENKINS_USER),
    "no instance ids": ({"INSTANCE_IDS": ""}, JENKINS_USER),
    "another user": ({}, OTHER_USER),
    "wildcard token": ({"LIFECYCLE_ACTIONS": GROUP + ":{instance}:-"}, JENKINS_USER),
}


@pytest.mark.parametrize("change, user", NOT_OURS.values(), ids=NOT_OURS.keys())
def test_a_build_queued_by_hand_that_is_not_the_consumers_deploy_is_not_adopted(world, change, user):
    (new,) = world.scale_to(3)
    notice, receipt = world.take_notice(new)
    params = consumers_parameters(new, notice["LifecycleActionToken"])
    params.update({name: value.format(instance=new) for name, value in change.items()})
    token = {JENKINS_USER: JENKINS_TOKEN, OTHER_USER: OTHER_TOKEN}[user]
    jenkins.Jenkins(world.jenkins.url, user, token, timeout=10).build_job(JOB, params)
    wait_for(lambda: world.builds() and world.builds()[0].result, what="the hand-made build finished")
    world.release(receipt)
    consumer, _ = world.start_consumer()
    wait_for(lambda: world.all_in_service([new]), what="CONTINUE after the consumer's own deploy")
    assert world.revision_of(new) == "v1"
    assert counted(consumer, "builds_adopted") == 0 and counted(consumer, "builds_queued") == 1
    ours = world.builds()[-1]
    assert ours.params == consumers_parameters(new, notice["LifecycleActionToken"])


# --- item 3: forged or stale messages -----------------------------------------------------------------

@pytest.mark.parametrize("forged_first", [True, False], ids=["forged before genuine", "forged after genuine"])
def test_a_forged_copy_with_another_token_cannot_take_over_the_action(world, forged_first):
    (world.tmp / "delay_s").write_text("0.5")
    (new,) = world.scale_to(3)
    genuine, receipt = world.take_notice(new)
    forged = {**genuine, "LifecycleActionToken": str(uuid.uuid4())}
    consumer, _ = world.start_consumer()
    if forged_first:
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(forged))
        wait_for(lambda: counted(consumer, "messages_received") >= 2, what="the forged copy received first")
        world.release(receipt)
    else:
        world.release(receipt)
        wait_for(lambda: any(b.building for b in world.builds()), what="the genuine action's build running")
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(forged))
    wait_for(lambda: world.all_in_service([new]), what="the genuine action CONTINUEd")
    assert world.revision_of(new) == "v1"
    wait_for(lambda: world.queue_depth() == 0, what="both messages handled")
    assert [d["LifecycleActionToken"] for d in world.dead_letters()] == [forged["LifecycleActionToken"]]
    assert counted(consumer, "actions_completed", result="CONTINUE") == 1
    assert counted(consumer, "messages_rejected", reason="token_rejected") == 1
    (build,) = world.scale_up_builds_for(new)
    assert build.params["LIFECYCLE_ACTIONS"] == f"{GROUP}:{new}:{genuine['LifecycleActionToken']}"


def test_a_message_pairing_one_instance_with_anothers_genuine_token_lets_no_undeployed_instance_in(world):
    # AWS checks that a token is real, not whose it is: the heartbeat check passes this message.
    x, y = world.scale_to(4)
    notice_x, receipt_x = world.take_notice(x)
    notice_y, receipt_y = world.take_notice(y)
    forged = {**notice_y, "LifecycleActionToken": notice_x["LifecycleActionToken"]}
    consumer, _ = world.start_consumer()
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(forged))
    wait_for(lambda: counted(consumer, "actions_completed", result="CONTINUE") == 1, what="the deploy it asked for")
    assert world.all_in_service([y]) and world.revision_of(y) == "v1", "the instance the build deployed"
    assert world.instances("Pending:Wait") == [x], "not the token's owner: its action is not completed"
    # x may ride along as a passenger (deployed, but named group:x:+), never under the token y's forger gave
    refs = " ".join(b.params.get("LIFECYCLE_ACTIONS", "") for b in world.builds()).split()
    assert not any(r.startswith(f"{GROUP}:{x}:") and not r.endswith(":+") for r in refs), refs
    world.release(receipt_x)
    world.release(receipt_y)
    wait_for(lambda: world.all_in_service([x, y]), what="the genuine messages handled")
    assert world.revision_of(x) == "v1"


def test_forty_forged_messages_for_instances_not_waiting_start_no_build_and_are_dead_lettered(world):
    in_service = world.instances("InService")
    template = {"Origin": "EC2", "Destination": "AutoScalingGroup", "LifecycleHookName": "deploy-on-launch",
                "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING", "AutoScalingGroupName": GROUP,
                "Service": "AWS Auto Scaling", "AccountId": "123456789012"}
    # Half name the group's running instances, half instances the group never had.
    targets = [in_service[n % 2] for n in range(20)] + [f"i-{n:017x}" for n in range(20)]
    bodies = [json.dumps({**template, "EC2InstanceId": i, "LifecycleActionToken": str(uuid.uuid4())})
              for i in targets]
    for start in range(0, len(bodies), 10):
        world.sqs.send_message_batch(QueueUrl=world.queue_url, Entries=[
            {"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[start:start + 10])])
    consumer, _ = world.start_consumer()
    wait_for(lambda: world.queue_depth(world.dlq_url) == 40, what="all forty dead-lettered")
    # Counted just after each move: wait for the last count rather than race it.
    wait_for(lambda: [counted(consumer, "messages_rejected", reason=r) for r in ("not_waiting", "not_in_group")]
             == [20, 20], what="each rejection counted by its reason")
    assert world.builds() == []
    wait_for(lambda: world.queue_depth() == 0, what="none left on the hook queue")
    new = world.scale_to(3)  # and the real scale-up behind them still deploys
    wait_for(lambda: world.all_in_service(new), what="the genuine launch CONTINUEd")


# --- item 4: group names with a space or a colon ----------------------------------------------------

@pytest.mark.scenario(group="web asg:blue", grace_period_s=0)
def test_a_restarted_consumer_adopts_the_running_build_of_a_group_named_with_a_space_and_a_colon(world):
    (world.tmp / "delay_s").write_text("1.5")
    world.start_consumer()
    new = world.scale_to(3)
    wait_for(lambda: any(b.building for b in world.builds()), what="build running")
    world.stop_consumers()
    successor, _ = world.start_consumer()
    wait_for(lambda: world.all_in_service(new), timeout_s=30, what="resumed and completed")
    assert len(world.builds()) == 1
    assert counted(successor, "builds_adopted") == 1 and counted(successor, "builds_queued") == 0


# --- item 5: Jenkins's own root URL spelled differently -------------------------------------------------

@pytest.mark.scenario(quiet_period_s=5, grace_period_s=0)
def test_a_restarted_consumer_finds_its_queued_item_when_jenkins_spells_its_root_url_differently(world):
    # Jenkins behind a proxy prefix, configured as 127.0.0.1; the consumer reaches it as localhost.
    world.jenkins.set_root_url(world.jenkins.url + "ci/")
    world.set_jenkins_url(world.jenkins.url.replace("127.0.0.1", "localhost"))
    first, _ = world.start_consumer()
    (new,) = world.scale_to(3)
    wait_for(lambda: counted(first, "builds_queued") == 1, what="the first consumer queued the build")
    world.stop_consumers()
    assert world.builds() == [], "still in the quiet period"
    successor, _ = world.start_consumer()
    wait_for(lambda: world.all_in_service([new]), timeout_s=30, what="CONTINUE after the queued build")
    assert counted(successor, "builds_adopted") == 1 and counted(successor, "builds_queued") == 0
    assert len(world.builds()) == 1


# --- item 6: a wrong job name ---------------------------------------------------------------------------

@pytest.mark.scenario(job_name="deploy-typo", jenkins_deadline_s=1)
def test_a_missing_job_is_waited_out_like_a_jenkins_outage_then_the_configured_result_applies(world):
    consumer, _ = world.start_consumer()
    (new,) = world.scale_to(3)
    wait_for(lambda: new not in world.instances(), what="ABANDON after lifecycle.jenkins_deadline_s")
    # Counted just after AWS answers the completion, which the instance's end may beat: wait for it.
    wait_for(lambda: counted(consumer, "actions_completed", result="ABANDON") >= 1, what="the ABANDON counted")
    assert counted(consumer, "jenkins_job_missing") >= 1
    assert world.queue_depth(world.dlq_url) == 0, "not burnt through its redeliveries"


@pytest.mark.scenario(job_name="deploy-late", jenkins_deadline_s=30)
def test_a_job_created_while_the_consumer_backs_off_is_then_used(world):
    consumer, _ = world.start_consumer()
    (new,) = world.scale_to(3)
    wait_for(lambda: counted(consumer, "jenkins_job_missing") >= 2, what="the missing job retried")
    world.add_deploy_job("deploy-late")
    wait_for(lambda: world.all_in_service([new]), what="deployed once the job exists")
    assert world.revision_of(new) == "v1" and world.queue_depth(world.dlq_url) == 0


# --- issue 19 item 1: a plan with no job is checked like any other --------------------------------------

def _eventbridge(body: dict, detail_type: str) -> dict:
    detail = {k: body[k] for k in ("LifecycleActionToken", "AutoScalingGroupName", "LifecycleHookName",
                                   "EC2InstanceId", "LifecycleTransition", "Origin", "Destination") if k in body}
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": "aws.autoscaling",
            "account": "123456789012", "time": "2026-12-05T05:00:00Z", "region": "us-east-1",
            "resources": [], "detail": detail}


FORGERIES = {
    "into the warm pool": lambda b: {**b, "Destination": "WarmPool"},
    "terminating, naming the launch hook": lambda b: {**b, "LifecycleTransition":
                                                      "autoscaling:EC2_INSTANCE_TERMINATING"},
    "terminating through EventBridge": lambda b: _eventbridge(
        {**b, "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING"}, "EC2 Instance-terminate Lifecycle Action"),
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_forged_message_that_needs_no_build_never_puts_an_undeployed_instance_in_service(world, forge):
    """A job-less plan (warm-pool entry, a terminating action without a job) skipped the state check and the
    token-confirming heartbeat, and completion goes by instance id: a made-up token let the waiting launch in."""
    (new,) = world.scale_to(3)
    genuine, _ = world.take_notice(new)  # hidden for 60 s: only the forgery reaches the consumer
    forged = forge({**genuine, "LifecycleActionToken": str(uuid.uuid4())})
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(forged))
    consumer, _ = world.start_consumer()
    wait_for(lambda: world.queue_depth(world.dlq_url) == 1, what="the forgery dead-lettered")
    wait_for(lambda: counted(consumer, "messages_rejected", reason="not_waiting") == 1, what="rejected, counted")
    assert world.instances("Pending:Wait") == [new], "still held by its hook: nothing completed it"
    assert new not in world.in_elb() and new not in world.in_target_group()
    assert counted(consumer, "actions_completed", result="CONTINUE") == 0 and world.builds() == []


def test_a_message_naming_a_hook_of_another_transition_is_rejected(world):
    from helper.consumer.action import TERMINATING, LifecycleAction
    from helper.consumer.autoscaling import WRONG_HOOK, AutoScaling

    autoscaling = AutoScaling(world.asg)
    named = lambda hook, transition="autoscaling:EC2_INSTANCE_LAUNCHING": LifecycleAction(  # noqa: E731
        group=GROUP, instance_id="i-0123456789abcdef0", transition=transition, hook=hook, token=str(uuid.uuid4()))
    assert autoscaling.wrong_hook(named("deploy-on-launch")) is None
    assert autoscaling.wrong_hook(named("deploy-on-launch", TERMINATING)) == WRONG_HOOK
    assert autoscaling.wrong_hook(named("no-such-hook")) == WRONG_HOOK
    assert autoscaling.wrong_hook(named(None, TERMINATING)) is None  # reconciled: found by transition


def test_an_instance_paired_with_anothers_token_keeps_its_own_action_alive_through_a_long_build(world):
    """Issue 19 item 4: heartbeats went by X's token, so Y's own action timed out mid-build and Y was abandoned."""
    from helper.sandbox.aws import lifecycle

    x, y = world.scale_to(4)
    notice_x, receipt_x = world.take_notice(x)
    notice_y, _ = world.take_notice(y)
    forged = {**notice_y, "LifecycleActionToken": notice_x["LifecycleActionToken"]}
    lifecycle.set_time_scale(10.0)  # the hooks' 30 s heartbeat timeout is 3 s real; the build takes 6 s
    (world.tmp / "delay_s").write_text("6")
    consumer, _ = world.start_consumer()
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(forged))
    wait_for(lambda: counted(consumer, "actions_completed", result="CONTINUE") == 1, timeout_s=30,
             what="Y deployed and CONTINUEd")
    assert world.all_in_service([y]) and world.revision_of(y) == "v1"
    assert counted(consumer, "actions_gone") == 0, "Y's own action was kept alive, not timed out"
