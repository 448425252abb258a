"""Shared fixtures: one moto server per test session on loopback, reset between tests."""

from __future__ import annotations

import pytest

from helper.sandbox.aws.server import SANDBOX_ENV, MotoServer


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
