"""Passengers (helper/consumer/passengers.py): a build takes along the site's other waiting launches,
their holders follow it instead of queuing their own, and nothing is completed for a passenger
except by the holder of its message, after its own checks."""

from __future__ import annotations

import pytest

import jenkins
from helper.config.lifecycle import GroupRoute, LifecycleConfig
from helper.consumer import passengers
from helper.consumer.action import PASSENGER, LifecycleAction, passenger_reference
from helper.consumer.autoscaling import Waiting
from helper.consumer.jenkins_client import ACTIONS_PARAM, Found, covers, not_ours, serves
from tests.scenario import GROUP, JENKINS_USER, JOB, OTHER_TOKEN, OTHER_USER, SITE, wait_for
from tests.units import sample

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"


def waiting(instance: str, state: str = "Pending:Wait", group: str = "web-asg") -> Waiting:
    return Waiting(group, instance, state)


def found(instances: list[str], refs: list[str], *, queue_id: int | None = 7, build_number: int | None = None,
          building: bool = False, user: str = JENKINS_USER, started_ms: int | None = None) -> Found:
    params = {"SITE": SITE, "INSTANCE_IDS": ",".join(instances), "REVISION": "", "DRY_RUN": "false",
              ACTIONS_PARAM: " ".join(refs)}
    return Found(queue_id=queue_id, build_number=build_number, refs=tuple(refs), building=building,
                 params=params, user=user, started_ms=started_ms)


# --- pure rules ------------------------------------------------------------------------------------------

def test_choose_takes_only_launches_into_service_neither_ours_nor_taken_up_to_the_room_left():
    seen = [waiting("i-c"), waiting("i-a"), waiting("i-warm", "Warmed:Pending:Wait"),
            waiting("i-own"), waiting("i-busy"), waiting("i-gone", "Terminating:Wait"), waiting("i-a"),
            waiting("i-b")]
    chosen = passengers.choose(seen, own={"i-own"}, taken={"i-busy"}, room=2)
    assert [w.instance_id for w in chosen] == ["i-a", "i-b"]
    assert passengers.choose(seen, own=set(), taken=set(), room=0) == ()


def test_groups_for_names_only_the_groups_routed_to_the_same_site_and_job():
    routes = {g: GroupRoute(g, site, job) for g, site, job in (
        ("d", "web", "deploy"), ("b", "web", "other"), ("c", "api", "deploy"), ("a", "web", "deploy"))}
    config = LifecycleConfig(queue_url="https://sqs/123456789012/hooks", region="us-east-1", jenkins=None,
                             groups=routes)
    assert passengers.groups_for(config, "web", "deploy") == ["a", "d"]


def test_busy_counts_every_recent_build_of_ours_queued_running_or_finished():
    """A finished build's instance that still waits is about to be completed by its holder: taking it
    along again deployed it twice (58 duplicate builds in the 3-replica burst)."""
    queued = found(["i-1"], [])
    running = found(["i-2"], [], build_number=3, building=True)
    finished = found(["i-3"], [], build_number=2)
    assert passengers.busy([queued, running, finished]) == {"i-1", "i-2", "i-3"}


def test_an_earlier_build_deploying_a_passenger_sends_ours_round_again_a_later_one_does_not():
    rider = [waiting("i-p")]
    assert passengers.clash([found(["i-p"], [], queue_id=5)], rider, mine=9)
    assert not passengers.clash([found(["i-p"], [], queue_id=12)], rider, mine=9)
    assert not passengers.clash([found(["i-p"], [], queue_id=5, build_number=4)], rider, mine=9), "finished"
    assert not passengers.clash([found(["i-q"], [], queue_id=5)], rider, mine=9)


def test_a_passenger_reference_is_encoded_like_an_actions_and_never_a_token():
    assert passenger_reference("web asg:blue", "i-1") == "web%20asg%3Ablue:i-1:+"
    assert not covers("web-asg:i-1:+", LifecycleAction("web-asg", "i-1", LAUNCHING, token="t-1"))
    # A message claiming the token "+" would otherwise be "exactly" the passenger a build names:
    # it never is (AWS would refuse the token too, but a build is not adopted on its say).
    forged = LifecycleAction("web-asg", "i-1", LAUNCHING, token=PASSENGER)
    assert not covers(passenger_reference("web-asg", "i-1"), forged)


SENT_MS = 1_764_950_000_000  # when SQS got the action's notification


@pytest.mark.parametrize("build, sent_ms, serves_it", [
    (found(["i-1"], ["web-asg:i-1:+"]), SENT_MS, True),  # queued
    (found(["i-1"], ["web-asg:i-1:+"], build_number=3, building=True), None, True),  # running
    # Finished: only if it started after the notification was sent, i.e. deployed in this very wait.
    (found(["i-1"], ["web-asg:i-1:+"], build_number=3, started_ms=SENT_MS + 1), SENT_MS, True),
    (found(["i-1"], ["web-asg:i-1:+"], build_number=3, started_ms=SENT_MS - 1), SENT_MS, False),  # an earlier wait's
    (found(["i-1"], ["web-asg:i-1:+"], build_number=3, started_ms=SENT_MS + 1), None, False),  # no SentTimestamp
    (found(["i-1"], ["web-asg:i-1:+"], build_number=3), SENT_MS, False),  # no start time
    (found(["i-2"], ["web-asg:i-1:+"]), SENT_MS, False),  # names it but does not deploy it
    (found(["i-1"], ["other-asg:i-1:+"]), SENT_MS, False),  # another group's
    (found(["i-1"], ["web-asg:i-1:-"]), SENT_MS, False),  # a reconciled action's mark is not a passenger
    (found(["i-1"], ["web-asg:i-1:t-0"], build_number=3, started_ms=SENT_MS + 1), SENT_MS, False),  # another token
])
def test_a_build_serves_an_action_with_a_token_that_it_took_along_while_it_waits(build, sent_ms, serves_it):
    assert serves(build, LifecycleAction("web-asg", "i-1", LAUNCHING, token="t-1"), sent_ms) is serves_it


def test_a_passenger_build_queued_by_someone_else_is_not_ours():
    forged = found(["i-1"], ["web-asg:i-1:+"], user="mallory")
    assert serves(forged, LifecycleAction("web-asg", "i-1", LAUNCHING, token="t-1"))
    assert not_ours(forged, SITE, JENKINS_USER) == "queued by 'mallory'"


# --- against the sandbox -----------------------------------------------------------------------------------

def refs_of_builds(world) -> list[str]:
    return [r for b in world.builds() for r in b.params.get(ACTIONS_PARAM, "").split()]


def test_a_launch_whose_message_another_replica_holds_rides_the_first_build_and_its_holder_follows_it(world):
    (world.tmp / "delay_s").write_text("2")
    x, y = world.scale_to(4)
    _, receipt_y = world.take_notice(y)  # y's message is elsewhere: with a rival, or not received yet
    first, _ = world.start_consumer()
    wait_for(lambda: any(y in b.params["INSTANCE_IDS"].split(",") for b in world.builds()),
             what="the build for x taking y along")
    assert f"{GROUP}:{y}:+" in refs_of_builds(world)
    second, _ = world.start_consumer()  # a second replica; either may receive y's message
    world.release(receipt_y)
    wait_for(lambda: world.all_in_service([x, y]), timeout_s=30, what="both CONTINUEd")
    assert len(world.builds()) == 1, "one build for both"
    assert world.revision_of(x) == world.revision_of(y) == "v1"
    assert sum(sample(c, "adh_builds_adopted_total") for c in (first, second)) == 1
    assert sum(sample(c, "adh_actions_completed_total", result="CONTINUE") for c in (first, second)) == 2


def test_a_holder_whose_message_arrives_after_the_build_that_took_it_along_finished_follows_that_build(world):
    x, y = world.scale_to(4)
    _, receipt_y = world.take_notice(y)
    consumer, _ = world.start_consumer()
    wait_for(lambda: [b.result for b in world.builds()] == ["SUCCESS"] and world.all_in_service([x]),
             what="the build for x, with y along, finished and x CONTINUEd")
    assert y in world.builds()[0].params["INSTANCE_IDS"].split(",")
    world.release(receipt_y)
    wait_for(lambda: world.all_in_service([y]), what="y CONTINUEd on that build's result")
    assert len(world.builds()) == 1, "no second deploy of y"
    assert sample(consumer, "adh_builds_adopted_total") == 1


@pytest.mark.scenario(breaker={"failures": 2, "margin_s": 60}, batch_window_s=0.2)
def test_a_failed_build_with_a_passenger_is_counted_once_by_the_breaker(world):
    """y's holder (here a later batch of the same replica, which shares one breaker lock; two replicas
    would race on the tag) sees the build start, waiting behind an operator's 4 s dry run, and
    completes y after it failed: only the deployment that queued the build counts it. Counted twice,
    the breaker (2 failures) would open and hold the replacements; counted once, they are deployed."""
    (world.tmp / "delay_s").write_text("4")
    consumer, _ = world.start_consumer()
    operator(world).build_job(JOB, {"SITE": SITE, "DRY_RUN": "true"})  # the job runs one build at a time
    x, y = world.scale_to(4)
    (world.tmp / "fail" / x).touch()
    _, receipt_y = world.take_notice(y)
    wait_for(lambda: sample(consumer, "adh_builds_queued_total") == 1, what="the build for x queued")
    world.release(receipt_y)
    wait_for(lambda: sample(consumer, "adh_builds_adopted_total") == 1, what="y's deployment following it")
    assert [b for b in world.builds() if y in b.params["INSTANCE_IDS"]] == [], "still queued"
    wait_for(lambda: sample(consumer, "adh_actions_completed_total", result="ABANDON") == 2, timeout_s=30,
             what="both ABANDONed")
    assert [b.result for b in world.builds() if y in b.params["INSTANCE_IDS"]] == ["FAILURE"]
    opened = lambda: sample(consumer, "adh_breaker_opened_total", site=SITE)  # noqa: E731
    wait_for(lambda: opened() == 1 or sample(consumer, "adh_actions_completed_total", result="CONTINUE") == 2,
             timeout_s=60, what="the breaker opening, or the replacements deployed")
    assert opened() == 0, "one failed build, counted once"


def operator(world):
    """Jenkins as another user than the consumer's."""
    return jenkins.Jenkins(world.jenkins.url, username=OTHER_USER, password=OTHER_TOKEN)


def test_a_passenger_build_someone_else_queued_is_not_followed(world):
    """An attacker with a Jenkins account queues a build naming a waiting launch as a passenger:
    the consumer neither follows it nor lets its result decide the launch."""
    (world.tmp / "delay_s").write_text("3")
    (x,) = world.scale_to(3)
    operator(world).build_job(JOB, {"SITE": SITE, "INSTANCE_IDS": x, "REVISION": "", "DRY_RUN": "false",
                          "SKIP_TESTS": "true", ACTIONS_PARAM: f"{GROUP}:{x}:+"})
    consumer, _ = world.start_consumer()
    wait_for(lambda: world.all_in_service([x]), timeout_s=30, what="x CONTINUEd after its own build")
    ours = [b for b in world.builds() if f"{GROUP}:{x}:+" not in b.params.get(ACTIONS_PARAM, "")]
    assert len(ours) == 1 and ours[0].result == "SUCCESS"
    assert sample(consumer, "adh_builds_adopted_total") == 0


def test_a_holder_following_a_build_that_is_cancelled_before_it_starts_looks_again_and_never_abandons(world):
    """The queuer cancels its item when an earlier one took its actions along (or a person does): a
    holder that followed it for a passenger got CANCELLED and ABANDONed its launch (the 3-replica
    burst lost 24 this way)."""
    (world.tmp / "delay_s").write_text("3")
    consumer, _ = world.start_consumer()
    operator(world).build_job(JOB, {"SITE": SITE, "DRY_RUN": "true"})  # holds the job: ours stays queued
    x, y = world.scale_to(4)
    _, receipt_y = world.take_notice(y)
    wait_for(lambda: sample(consumer, "adh_builds_queued_total") == 1, what="the build for x, with y along")
    world.release(receipt_y)
    wait_for(lambda: sample(consumer, "adh_builds_adopted_total") == 1, what="y's deployment following it")
    (queued,) = [item["id"] for item in operator(world).get_queue_info()]
    operator(world).cancel_queue(queued)
    wait_for(lambda: world.all_in_service([y]), timeout_s=30, what="y deployed by a build of its own")
    assert sample(consumer, "adh_actions_completed_total", result="ABANDON") == 1, "x only: its own build"
    assert x not in world.instances("InService")
