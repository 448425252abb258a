"""helper.consumer.autoscaling: Auto Scaling's word on an action, and a group's hooks read once."""

from __future__ import annotations

import pytest

from helper.consumer.action import TERMINATING
from helper.consumer.autoscaling import Seen, mismatch
from tests.units import GROUP, action


class _HooksClient:
    """The three Auto Scaling calls helper.consumer.autoscaling makes for a reconciled action."""

    def __init__(self):
        self.describes, self.calls = 0, []

    def describe_lifecycle_hooks(self, AutoScalingGroupName):
        self.describes += 1
        return {"LifecycleHooks": [{"LifecycleHookName": "on-launch", "HeartbeatTimeout": 600,
                                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"}]}

    def record_lifecycle_action_heartbeat(self, **target):
        self.calls.append(("heartbeat", target))

    def complete_lifecycle_action(self, **target):
        self.calls.append(("complete", target))


def test_a_reconciled_action_reads_its_groups_hooks_once():
    from helper.consumer.action import LAUNCHING, LifecycleAction
    from helper.consumer.autoscaling import AutoScaling

    client = _HooksClient()
    seam = AutoScaling(client)
    action = LifecycleAction("web-asg", "i-0123456789abcdef0", LAUNCHING)  # no token, no hook name
    assert seam.heartbeat_timeout_s(action) == 600
    for _ in range(3):
        seam.heartbeat(action)
    seam.complete(action, "CONTINUE")
    assert client.describes == 1
    assert client.calls[-1] == ("complete", {"AutoScalingGroupName": "web-asg", "LifecycleHookName": "on-launch",
                                             "InstanceId": "i-0123456789abcdef0", "LifecycleActionResult": "CONTINUE"})


@pytest.mark.parametrize("seen, act, expected", [
    pytest.param(Seen(GROUP, "Pending:Wait"), action(), None, id="launching, waiting"),
    pytest.param(Seen(GROUP, "Warmed:Pending:Wait"), action(), None, id="launching into a warm pool"),
    pytest.param(Seen(GROUP, "Terminating:Wait"), action(transition=TERMINATING), None, id="terminating, waiting"),
    pytest.param(None, action(), "not_in_group", id="unknown to Auto Scaling"),
    pytest.param(Seen("api-asg", "Pending:Wait"), action(), "not_in_group", id="in another group"),
    pytest.param(Seen(GROUP, "InService"), action(), "not_waiting", id="stale: already in service"),
    pytest.param(Seen(GROUP, "Terminating:Wait"), action(), "not_waiting", id="waiting for the other transition"),
    pytest.param(Seen(GROUP, "Pending:Wait"), action(transition=TERMINATING), "not_waiting",
                 id="terminating message for a launching instance"),
])
def test_only_an_instance_waiting_in_its_group_for_this_transition_checks_out(seen, act, expected):
    assert mismatch(act, seen) == expected
