"""The mission in one test: a full deploy through the Jenkinsfile, a scale-out gated on a
scale-up build of the same Jenkinsfile, and a failed deploy replaced.

Everything real that can be: the Jenkinsfile runs in the Groovy 2.4 stub runner as the
Jenkins emulator's build command (job parameters read from jenkins/jobs/), the helper
writes the inventory, and its default deploy command, `cap "$SITE" deploy`, deploys the
Capistrano app of tests/capapp over real SSH to a real host per instance (tests/sshhosts.py).
What each instance runs is read from its host.
"""

from __future__ import annotations

import pytest

from helper.sandbox.hosts import HostNetwork
from tests.polling import wait_for
from tests.realdeploy import app_repository, needs_real_hosts, scale_up_world

pytestmark = needs_real_hosts()


@pytest.fixture
def world(aws, tmp_path):
    network = HostNetwork()
    try:
        with scale_up_world(aws, tmp_path, network, app_repository(tmp_path)) as world:
            yield world
    finally:
        network.close()


def test_full_deploy_then_gated_scale_out_then_a_failed_launch_replaced(world):
    original = world.aws.instances()
    v2 = world.commits["v2"]

    # 1. A full deploy of v2 through the Jenkinsfile reaches every instance behind the ELB.
    full = world.builds.run(SITE="web", REVISION="v2")
    assert full.result == "SUCCESS", full.console
    assert world.revisions(original) == [v2, v2]
    assert (world.aws.tmp / "revisions" / "web.revision").read_text().strip() == "v2"

    # 2. Scale out by 3: held in Pending:Wait until a scale-up build deployed v2 to them.
    world.aws.start_consumer()
    new = world.aws.scale_to(5)
    assert len(new) == 3 and not set(new) & world.aws.in_elb()
    wait_for(lambda: world.aws.all_in_service(new), timeout_s=120, what="scale-up CONTINUE")
    scale_up = [b for b in world.builds.all() if b.params.get("LIFECYCLE_ACTIONS")]
    assert len(scale_up) == 1 and sorted(scale_up[0].params["INSTANCE_IDS"].split(",")) == new
    assert "STAGE Test: skipped" in scale_up[0].console
    assert world.revisions(new) == [v2] * 3
    assert set(new) <= world.aws.in_elb() and set(new) <= world.aws.in_target_group()

    # 3. A deploy that fails on a new instance (its sshd never comes up): ABANDON, and the
    #    replacement gets v2.
    world.hosts.fail_next_boots(1)
    (bad,) = world.aws.scale_to(6)
    wait_for(lambda: bad not in world.aws.instances(), timeout_s=120, what="ABANDON")
    wait_for(lambda: len(world.aws.instances("InService")) == 6, timeout_s=120, what="replacement CONTINUEd")
    (replacement,) = set(world.aws.instances()) - set(original) - set(new)
    assert world.revisions([replacement]) == [v2]
    assert world.revisions([bad]) == [None]
    results = [b.result for b in world.builds.all()]
    assert results.count("FAILURE") == 1 and results.count("SUCCESS") == 3
