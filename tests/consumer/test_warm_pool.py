"""Warm pools end to end (issue 19 item 11), on the sandbox's warm-pool stand-in (moto has none):
an instance enters the pool (Warmed:Pending:Wait, completed without a build), and its later launch
out of the pool is a new action with a new token, deployed before it takes traffic."""

from __future__ import annotations

import pytest

from helper.sandbox.aws import scaling
from tests.scenario import GROUP, REGION, Scenario, wait_for

ACCOUNT = "123456789012"


@pytest.fixture
def world(aws, tmp_path):
    # The shortest sweep the config allows: at least the visibility timeout (issue 19 item 20).
    scenario = Scenario(aws, tmp_path, visibility_timeout_s=1, reconcile_interval_s=1)
    yield scenario
    scenario.close()


def test_a_launch_out_of_the_pool_after_a_reconciled_entry_is_deployed_before_it_takes_traffic(world):
    (new,) = world.scale_to(3)
    world.sqs.purge_queue(QueueUrl=world.queue_url)  # no notification: reconciliation finds the entry
    scaling.move_to_warm_pool(ACCOUNT, REGION, GROUP, new)
    world.start_consumer()
    wait_for(lambda: world.instances("Warmed:Stopped") == [new], what="the entry completed, tokenless, with no build")
    assert world.builds() == [] and new not in world.in_elb() | world.in_target_group()
    scaling.launch_from_warm_pool(ACCOUNT, REGION, GROUP, new)  # a scale-out takes it: a new token
    assert world.instances("Pending:Wait") == [new]
    wait_for(lambda: world.all_in_service([new]), what="deployed, then CONTINUEd out of the pool")
    assert len(world.scale_up_builds_for(new)) == 1 and world.revision_of(new) == "v1"
    assert new in world.in_elb() and new in world.in_target_group()
