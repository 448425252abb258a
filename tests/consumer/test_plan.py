"""How a deployment hands over actions that builds already in Jenkins serve (helper/consumer/plan.py).
A table over a pure function: which build each action goes to, and what is left for a build of its own."""

from __future__ import annotations

import pytest

from helper.consumer.action import LAUNCHING, LifecycleAction
from helper.consumer.inflight import Tracked
from helper.consumer.jenkins_client import ACTIONS_PARAM, Found
from helper.consumer.plan import Plan, hand_over

GROUP = "web-asg"
A, B, C = "i-0aaaaaaaaaaaaaaa0", "i-0bbbbbbbbbbbbbbb0", "i-0ccccccccccccccc0"


def tracked(instance: str) -> Tracked:
    return Tracked(LifecycleAction(GROUP, instance, LAUNCHING, token=f"tok-{instance}"), received_at=0.0)


def build(name: str, *instances: str, queue_id: int | None = None, number: int | None = None,
          building: bool = False) -> Found:
    refs = tuple(f"{GROUP}:{i}:tok-{i}" for i in instances)
    params = {"INSTANCE_IDS": ",".join(instances), ACTIONS_PARAM: " ".join(refs), "name": name}
    return Found(queue_id=queue_id, build_number=number, refs=refs, building=building, params=params,
                 result=None if building or number is None else "SUCCESS")


QUEUED_7 = build("queued 7", A, B, queue_id=7)
QUEUED_9 = build("queued 9", A, queue_id=9)
RUNNING_3 = build("running #3", A, queue_id=12, number=3, building=True)
FINISHED_1 = build("finished #1", A, queue_id=4, number=1)
FINISHED_2 = build("finished #2", A, queue_id=5, number=2)


@pytest.mark.parametrize("found, instances, expected", [
    pytest.param([QUEUED_9, QUEUED_7], [A], {"queued 7": [A]}, id="rivals: the lowest queue id is kept"),
    pytest.param([FINISHED_1, RUNNING_3], [A], {"running #3": [A]}, id="in progress before finished"),
    pytest.param([FINISHED_1, FINISHED_2], [A], {"finished #2": [A]}, id="the newest finished build"),
    pytest.param([QUEUED_7], [A, B], {"queued 7": [A, B]}, id="one build serving both: one plan"),
    pytest.param([QUEUED_9, QUEUED_7], [A, B], {"queued 7": [A, B]}, id="both to the build that serves both"),
    pytest.param([QUEUED_9], [A, B, C], {"queued 9": [A], None: [B, C]}, id="the rest get a plan of their own"),
])
def test_each_action_goes_to_the_best_build_that_serves_it(found, instances, expected):
    plan = Plan("web", "deploy", tuple(tracked(i) for i in instances), terminating=True)
    handover = hand_over(plan, found)
    got = {(p.adopt.params["name"] if p.adopt else None): [t.action.instance_id for t in p.tracked]
           for p in handover.plans}
    assert got == expected
    assert len(handover.plans) == len(expected), "one plan per build, and at most one for the rest"
    for p in handover.plans:  # checked before Jenkins was asked; the route's job and kind stay
        assert (p.site, p.job, p.terminating, p.checked) == ("web", "deploy", True, True)


def test_the_same_tracked_objects_are_handed_over_with_their_schedule():
    mine = tracked(A)
    mine.schedule.heartbeat_at = 42.0
    (plan,) = hand_over(Plan("web", "deploy", (mine,)), [QUEUED_7]).plans
    assert plan.tracked[0] is mine and plan.tracked[0].schedule.heartbeat_at == 42.0
