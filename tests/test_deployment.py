"""helper.lifecycle.deployment: the parameters a scale-up build is queued with."""

from __future__ import annotations


def test_a_scale_up_build_gets_exactly_the_parameters_doctor_checks_for():
    from helper.lifecycle.deployment import Deployment
    from helper.lifecycle.plan import Plan
    from helper.lifecycle.jenkins_client import BUILD_PARAMETERS

    assert tuple(Deployment(None, Plan(site="web", job="deploy", tracked=[])).parameters()) == BUILD_PARAMETERS
