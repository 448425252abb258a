"""The sandbox Jenkins's `deploy` job: its definition, the command its builds run, and the
revisions the demo fleet starts with. What a build does is build.py, the one deploy job of the demo
and of the tests' scenarios (tests/scenario.py).

The job's parameters come from the Jenkins Job Builder file shipped in the package
(jenkins/jobs/deploy.yaml); without it the sandbox refuses to start rather than guess them.
"""

from __future__ import annotations

import shlex
import sys
from importlib import resources
from pathlib import Path

try:
    from importlib.resources.abc import Traversable
except ImportError:  # Python 3.10
    from importlib.abc import Traversable

import yaml

from helper.deploys import revision
from helper.errors import HelperError
from helper.settings import load_config

DEPLOY_JOB = "deploy"
# The real job's definition, as package data (setup.cfg): a symlink to jenkins/jobs/deploy.yaml in
# a checkout, a copy in a wheel. The sandbox has no other source for the job's parameters.
JOB_DEFINITION = resources.files("helper.sandbox.jenkins") / "jobs" / "deploy.yaml"
# Jenkins folds identical queued builds together during the quiet period; a second is
# enough for a burst of launch notifications and barely noticeable in a demo.
QUIET_PERIOD_S = 1.0
# What the seeded instances "run" before anyone deploys, so a scale-out right after
# `sandbox up` finds a revision to pin.
INITIAL_REVISION = "demo-1"


def deploy_command(config: Path, state_dir: Path, endpoint_url: str) -> str:
    """The job's shell command; only our own paths and URL appear in it, quoted."""
    argv = [sys.executable, "-m", "helper.sandbox.demo.build", "--config", str(config),
            "--state-dir", str(state_dir), "--endpoint-url", endpoint_url]
    return "exec " + shlex.join(argv)


def add_deploy_job(emulator, command: str, definition: Traversable | Path = JOB_DEFINITION) -> str:
    """Define `deploy` from its Jenkins Job Builder file; returns where it came from.

    A definition that is missing, unreadable or without a `deploy` job is a HelperError: a
    sandbox whose job silently lacked the real job's parameters would test the wrong thing."""
    if not definition.is_file():
        raise HelperError(f"the deploy job's definition {definition} is missing; reinstall aws-deploy-helper")
    with resources.as_file(definition) as path:
        try:
            names = emulator.add_jobs_from_jjb(path, commands={DEPLOY_JOB: command})
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise HelperError(f"{definition}: the Jenkins emulator cannot load it: {exc}") from None
    if DEPLOY_JOB not in names:
        raise HelperError(f"{definition} defines no {DEPLOY_JOB!r} job")
    return str(definition)


def record_initial_revisions(config_path: Path) -> None:
    """Load the demo config the way the helper does (so it is valid) and pin every site."""
    config = load_config(str(config_path))
    for site in config.sites:
        if revision.read(config.paths.revision_dir, site.name) is None:
            revision.record(config.paths.revision_dir, site.name, INITIAL_REVISION)
