"""Shared fixtures: one moto server per test session (per xdist worker) on loopback, reset between tests."""

from __future__ import annotations

import importlib.util
import os

import pytest

from helper.sandbox.aws.server import SANDBOX_ENV, MotoServer

# Under `pytest -n N` (docs/development.md), tests are spread over workers one by one, except these groups,
# each of which runs in order on one worker:
# - the files that make real hosts (helper/sandbox/hosts.py): they all take the one address range
#   (moto's default VPC, behind a lock) and the demo's fixed HAProxy ports, and some check that
#   nothing of theirs is left in the host's namespaces, links and routes;
REAL_HOSTS = "real-hosts"
REAL_HOST_FILES = frozenset({
    "tests/deploys/test_rollout_traffic.py", "tests/inventory/test_ipv6_and_alias.py",
    "tests/inventory/test_transport.py", "tests/sandbox/test_balancer.py", "tests/sandbox/test_sandbox_hosts.py",
    "tests/sandbox/test_sshhosts.py", "tests/test_mission.py", "tests/test_real_ssh.py",
})
# - files whose tests share one costly module-scoped fixture (a built wheel, a sandbox, a Jenkins),
#   made once rather than once per worker, and the walkthrough, whose commands run in document order.
WHOLE_FILES = frozenset({
    "tests/consumer/test_jenkins_pool.py", "tests/inventory/test_host_choice.py", "tests/sandbox/test_sandbox_up.py",
    "tests/test_doc_walkthrough.py", "tests/test_jenkins_side.py", "tests/test_packaging.py",
})


def group_of(nodeid: str) -> str:
    """The scope a test is scheduled in: its group, or the test alone."""
    path = nodeid.split("::", 1)[0]
    if path in REAL_HOST_FILES:
        return REAL_HOSTS
    return path if path in WHOLE_FILES else nodeid


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker's order is the order xdist hands tests out
        # The real-host group is the longest (minutes): first, so it runs beside everything else.
        items.sort(key=lambda item: group_of(item.nodeid) != REAL_HOSTS)


if importlib.util.find_spec("xdist") is not None:
    def pytest_xdist_make_scheduler(config, log):
        # xdist's own --dist loadgroup reads xdist_group marks from a node id suffix that pytest 9
        # no longer lets it set, so the groups went unheeded; its scope scheduler takes ours.
        from xdist.scheduler import LoadScopeScheduling

        class Grouped(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return group_of(nodeid)

        return Grouped(config, log)


@pytest.fixture(scope="session")
def moto_server():
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    """A clean local AWS: the endpoint URL, with the environment pointed at it."""
    moto_server.reset()
    for name, value in SANDBOX_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    # Make sure no developer profile or config leaks into the tests.
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    yield moto_server.url


@pytest.fixture
def network():
    """Real hosts for one test (helper/sandbox/hosts.py), every namespace and sshd removed after it."""
    from helper.sandbox.hosts import HostNetwork

    hosts = HostNetwork()
    try:
        yield hosts
    finally:
        hosts.close()


@pytest.fixture
def world(aws, tmp_path, request):
    """The scale-up sandbox (tests/scenario.py): a group behind load balancers, its hook and queue,
    the Jenkins emulator. `@pytest.mark.scenario(**settings)` changes its lifecycle settings; a
    module that needs more (alert targets, real hosts) overrides this fixture."""
    from tests.scenario import Scenario

    marker = request.node.get_closest_marker("scenario")
    scenario = Scenario(aws, tmp_path, **(marker.kwargs if marker else {}))
    yield scenario
    scenario.close()
