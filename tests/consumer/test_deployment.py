"""helper.consumer.deployment: the parameters a scale-up build is queued with."""

from __future__ import annotations


def test_a_scale_up_build_gets_exactly_the_parameters_doctor_checks_for():
    from helper.consumer.deployment import Deployment
    from helper.consumer.jenkins_client import BUILD_PARAMETERS
    from helper.consumer.plan import Plan

    assert tuple(Deployment(None, Plan(site="web", job="deploy", tracked=[])).parameters()) == BUILD_PARAMETERS


def test_jenkins_is_asked_again_later_after_each_failure_in_a_row():
    """Issue 19 item 19: no back-off meant one request and one error line per poll interval."""
    from helper.consumer.deployment import JENKINS_RETRY_MAX_S, jenkins_retry_s

    assert [jenkins_retry_s(2.0, n) for n in range(1, 8)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert jenkins_retry_s(2.0, 10_000) == JENKINS_RETRY_MAX_S  # a long outage never overflows
