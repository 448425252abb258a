"""The sandbox Jenkins's `deploy` job, and the script its builds run.

A build "deploys" by asking the helper for the site's hosts, exactly as a real job would,
then writing the revision each host now runs into `<state-dir>/hosts/<alias>.revision`:

    python -m helper.sandbox.demo.jobs --config demo.yml --state-dir .sandbox --endpoint-url URL

Build parameters arrive in the environment only (the emulator, like Jenkins, exports them);
they are passed on as argv elements, never pasted into a shell string.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

from helper.lifecycle import revision
from helper.errors import ConfigError
from helper.lifecycle.jenkins_client import BUILD_PARAMETERS
from helper.sandbox.aws.server import SANDBOX_ENV
from helper.settings import load_config
from helper.files.write import write_atomic

log = logging.getLogger(__name__)

DEPLOY_JOB = "deploy"
_DESCRIPTIONS = {
    "SITE": "the site to deploy (a name in the config)",
    "INSTANCE_IDS": "only these instances (comma separated)",
    "REVISION": "what to deploy; empty: the site's recorded revision",
    "LIFECYCLE_ACTIONS": "set by the lifecycle consumer",
    "DRY_RUN": "show, change nothing",
    "SKIP_TESTS": "skip the smoke tests",
}
_FLAGS = ("DRY_RUN", "SKIP_TESTS")
# The job's parameters when jenkins/jobs/ is not there: exactly the ones the consumer sends.
DEPLOY_PARAMETERS = tuple(
    {"name": name, "type": "bool" if name in _FLAGS else "string", "default": False if name in _FLAGS else "",
     "description": _DESCRIPTIONS[name]}
    for name in BUILD_PARAMETERS
)
# The repository's Jenkins Job Builder definitions, when it has them: the real job's parameters.
JJB_DIR = Path(__file__).resolve().parents[2] / "jenkins" / "jobs"
# Jenkins folds identical queued builds together during the quiet period; a second is
# enough for a burst of launch notifications and barely noticeable in a demo.
QUIET_PERIOD_S = 1.0
# What the seeded instances "run" before anyone deploys, so a scale-out right after
# `sandbox up` finds a revision to pin.
INITIAL_REVISION = "demo-1"
TRUE_WORDS = ("true", "yes", "1")


def deploy_command(config: Path, state_dir: Path, endpoint_url: str) -> str:
    """The job's shell command; only our own paths and URL appear in it, quoted."""
    argv = [sys.executable, "-m", "helper.sandbox.demo.jobs", "--config", str(config),
            "--state-dir", str(state_dir), "--endpoint-url", endpoint_url]
    return "exec " + shlex.join(argv)


def add_deploy_job(emulator, command: str, jjb_dir: Path = JJB_DIR) -> str:
    """Define `deploy` from jenkins/jobs/ when the emulator can read it there; returns where from."""
    if jjb_dir.is_dir():
        try:
            names = emulator.add_jobs_from_jjb(jjb_dir, commands={DEPLOY_JOB: command})
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            log.warning("event=jjb_unreadable path=%s error=%r", jjb_dir, str(exc))
            names = []
        if DEPLOY_JOB in names:
            return str(jjb_dir)
    emulator.add_job(DEPLOY_JOB, list(DEPLOY_PARAMETERS), command=command, concurrent=False)
    return "built-in"


def record_initial_revisions(config_path: Path) -> None:
    """Load the demo config the way the helper does (so it is valid) and pin every site."""
    config = load_config(str(config_path))
    for site in config.sites:
        if revision.read(config.paths.revision_dir, site.name) is None:
            revision.record(config.paths.revision_dir, site.name, INITIAL_REVISION)


# ---- inside a build ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuildParams:
    site: str
    instance_ids: str
    revision: str
    lifecycle_actions: str
    dry_run: bool
    skip_tests: bool
    build_id: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> BuildParams:
        flag = lambda name: environ.get(name, "").strip().lower() in TRUE_WORDS  # noqa: E731
        return cls(
            site=environ.get("SITE", "").strip(),
            instance_ids=environ.get("INSTANCE_IDS", "").strip(),
            revision=environ.get("REVISION", "").strip(),
            lifecycle_actions=environ.get("LIFECYCLE_ACTIONS", "").strip(),
            dry_run=flag("DRY_RUN"), skip_tests=flag("SKIP_TESTS"),
            build_id=f"{environ.get('JOB_BASE_NAME', 'deploy')}-{environ.get('BUILD_NUMBER', os.getpid())}",
        )


class BuildFailed(Exception):
    """One line for the console; the build fails."""


def _helper(args: list[str], env: dict[str, str]) -> str:
    argv = [sys.executable, "-m", "helper", *args]
    print(f"+ aws-deploy-helper {shlex.join(args)}", flush=True)
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    sys.stdout.write(done.stderr)
    if done.returncode != 0:
        raise BuildFailed(f"aws-deploy-helper {args[0]} exited with status {done.returncode}")
    return done.stdout


def _hosts(params: BuildParams, config: str, build_dir: Path, env: dict[str, str]) -> list[str]:
    args = ["inventory", "-c", config, "--site", params.site, "--json", str(build_dir / "inventory.json"),
            "--ssh-config", str(build_dir / "ssh_config"), "--known-hosts", str(build_dir / "known_hosts"),
            "--cap-config", str(build_dir / "cap_config.yml"),
            "--ansible-inventory", str(build_dir / "inventory.yml")]
    if params.instance_ids:
        args += ["--instance-ids", params.instance_ids]
    _helper(args, env)
    found = json.loads((build_dir / "inventory.json").read_text(encoding="utf-8"))["sites"].get(params.site, [])
    return [host["alias"] for host in found]


def _revision(params: BuildParams, config: str, env: dict[str, str]) -> str:
    if params.revision:
        chosen = params.revision
    elif params.lifecycle_actions:
        # A scale-up installs exactly what the site's other instances run.
        chosen = _helper(["revision", "get", "-c", config, "--site", params.site], env).strip()
    else:
        chosen = INITIAL_REVISION
    try:
        return revision.validate(chosen)
    except ConfigError as exc:
        raise BuildFailed(str(exc)) from None


def deploy(params: BuildParams, config: str, state_dir: Path, endpoint_url: str) -> None:
    if not params.site:
        raise BuildFailed("SITE is empty: name the site to deploy")
    env = {**os.environ, **SANDBOX_ENV, "AWS_ENDPOINT_URL": endpoint_url}
    env.pop("AWS_PROFILE", None)  # a developer's profile must not steer the sandbox's clients
    build_dir = state_dir / "builds" / params.build_id
    build_dir.mkdir(parents=True, exist_ok=True)
    hosts = _hosts(params, config, build_dir, env)
    if params.instance_ids and not hosts:
        raise BuildFailed(f"none of {params.instance_ids} is in site {params.site}")
    chosen = _revision(params, config, env)
    print("smoke tests: skipped" if params.skip_tests else "smoke tests: passed (demo)")
    for alias in hosts:
        print(f"{'would deploy' if params.dry_run else 'deploy'} {chosen} -> {alias}")
        if not params.dry_run:
            write_atomic(state_dir / "hosts" / f"{alias}.revision", chosen + "\n")
    if not params.instance_ids and not params.dry_run:
        _helper(["revision", "set", "-c", config, "--site", params.site, "--revision", chosen], env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo-deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--endpoint-url", required=True)
    args = parser.parse_args(argv)
    try:
        deploy(BuildParams.from_environ(os.environ), args.config, args.state_dir, args.endpoint_url)
    except BuildFailed as exc:
        print(f"ERROR: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
