"""The consumer's Jenkins connection pool: every deployment thread keeps its connection.

With python-jenkins's default (10 connections) a burst's threads discarded connections and
logged "Connection pool is full" (bench/lifecycle.py --burst); JenkinsJobs.connect sizes the pool.
"""

from __future__ import annotations

import logging
import threading

import pytest

from helper.consumer.jenkins_client import JenkinsJobs
from helper.sandbox.jenkins.emulator import JenkinsEmulator

USER, TOKEN = "consumer", "pool-token"
THREADS = 16
ROUNDS = 3


@pytest.fixture(scope="module")
def jenkins_url():
    with JenkinsEmulator(users={}, api_tokens={USER: TOKEN}) as emulator:
        yield emulator.url


def _call_at_once(jobs: JenkinsJobs) -> list[Exception]:
    """THREADS threads ask Jenkins together, ROUNDS times; the errors they met."""
    start = threading.Barrier(THREADS)
    errors: list[Exception] = []

    def ask() -> None:
        for _ in range(ROUNDS):
            start.wait(timeout=10)
            try:
                jobs.root_url()
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors


def _pool_full(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Connection pool is full" in r.getMessage()]


def test_a_pool_as_large_as_the_threads_keeps_every_connection(jenkins_url, caplog):
    caplog.set_level(logging.WARNING, logger="urllib3")
    jobs = JenkinsJobs.connect(jenkins_url, USER, TOKEN, 10, connections=THREADS)

    assert _call_at_once(jobs) == []
    assert _pool_full(caplog) == []


def test_the_default_pool_is_what_discarded_connections(jenkins_url, caplog):
    """The same load through a pool of 2: the warning the benchmark saw (so the test above can fail)."""
    caplog.set_level(logging.WARNING, logger="urllib3")
    jobs = JenkinsJobs.connect(jenkins_url, USER, TOKEN, 10, connections=2)

    assert _call_at_once(jobs) == []
    assert _pool_full(caplog)


def test_the_pool_serves_the_server_url_and_keeps_the_retry_policy_it_had(jenkins_url):
    import jenkins

    before = jenkins.Jenkins(jenkins_url, username=USER, password=TOKEN, timeout=10)._session
    jobs = JenkinsJobs.connect(jenkins_url, USER, TOKEN, 10, connections=THREADS)
    adapter = jobs._server._session.get_adapter(jenkins_url + "/job/x/api/json")

    assert adapter._pool_maxsize == THREADS
    assert adapter.max_retries.total == before.get_adapter(jenkins_url).max_retries.total
