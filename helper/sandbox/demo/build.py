"""What a build of the sandbox's `deploy` job runs: the one deploy job of the demo and of the
tests' scenarios (tests/scenario.py), started by jobs.deploy_command:

    python -m helper.sandbox.demo.build --config demo.yml --state-dir .sandbox --endpoint-url URL

A build "deploys" by asking the helper for the site's hosts, exactly as a real job would,
then writing the revision each host now runs into `<state-dir>/hosts/<alias>.revision` (and, with
real hosts, restarting each host's web app at that revision over SSH); a full
deploy (no INSTANCE_IDS, no LIFECYCLE_ACTIONS, not a dry run) records the site's revision, as the
Jenkinsfile does. Files in the state directory make builds misbehave, for tests and for a demo of
an ABANDON: `delay_s` (seconds every build waits first), `fail/once` (the next deploy fails, and
the file goes), `fail/<instance id>` (every deploy to that instance fails).

Build parameters arrive in the environment only (the emulator, like Jenkins, exports them);
they are passed on as argv elements, never pasted into a shell string.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from helper.cli import main as helper_main
from helper.deploys import revision
from helper.errors import ConfigError
from helper.files.write import write_atomic
from helper.sandbox.aws.server import SANDBOX_ENV
from helper.sandbox.balancer.balanced_site import APP_DIR, APP_PORT, WEBAPP
from helper.sandbox.demo.jobs import INITIAL_REVISION

# Written by `sandbox up --hosts` (real_hosts.RECORD_FILE): the hosts are real, deploy to them.
REAL_HOSTS_RECORD = "hosts.json"
SSH_TIMEOUT_S = 60  # a guard: restarting the app takes well under a second

# How the emulator (like Jenkins) spells a ticked boolean parameter, and what people type by hand.
TRUE_WORDS = ("true", "yes", "1")


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


def _helper(args: list[str]) -> str:
    """The helper's command line, run as a job's shell runs it but in this process: every build
    of the tests' scenarios would otherwise pay a Python start (and boto3's import) per call."""
    print(f"+ aws-deploy-helper {shlex.join(args)}", flush=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = helper_main(args)
    if status != 0:
        raise BuildFailed(f"aws-deploy-helper {args[0]} exited with status {status}")
    return out.getvalue()


def _hosts(params: BuildParams, config: str, build_dir: Path) -> list[tuple[str, str]]:
    """(alias, instance id) of each host the helper's inventory gives the build."""
    args = ["inventory", "-c", config, "--site", params.site, "--json", str(build_dir / "inventory.json"),
            "--ssh-config", str(build_dir / "ssh_config"), "--known-hosts", str(build_dir / "known_hosts"),
            "--cap-config", str(build_dir / "cap_config.yml"),
            "--ansible-inventory", str(build_dir / "inventory.yml")]
    if params.instance_ids:
        args += ["--instance-ids", params.instance_ids]
    _helper(args)
    found = json.loads((build_dir / "inventory.json").read_text(encoding="utf-8"))["sites"].get(params.site, [])
    return [(host["alias"], host["instance_id"]) for host in found]


def _revision(params: BuildParams, config: str) -> str:
    if params.revision:
        chosen = params.revision
    elif params.lifecycle_actions:
        # A scale-up installs exactly what the site's other instances run.
        chosen = _helper(["revision", "get", "-c", config, "--site", params.site]).strip()
    else:
        chosen = INITIAL_REVISION
    try:
        return revision.validate(chosen)
    except ConfigError as exc:
        raise BuildFailed(str(exc)) from None


def _misbehave_first(state_dir: Path) -> None:
    delay = state_dir / "delay_s"
    if delay.exists():
        time.sleep(float(delay.read_text()))


def _fail_once(state_dir: Path) -> None:
    once = state_dir / "fail" / "once"
    if once.exists():
        once.unlink()
        raise BuildFailed("deploy failed (fail/once)")


def _restart_app(ssh_config: Path, alias: str, chosen: str) -> None:
    """With real hosts (`sandbox up --hosts`), the deploy restarts the host's web app at `chosen`,
    over the ssh config the helper wrote, so the demo's load balancers serve what was deployed."""
    done = subprocess.run(["ssh", "-F", str(ssh_config), "-o", "BatchMode=yes", alias, "python3", str(WEBAPP),
                           "restart", "--dir", APP_DIR, "--port", str(APP_PORT), "--revision", chosen],
                          capture_output=True, text=True, timeout=SSH_TIMEOUT_S)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BuildFailed(f"deploy to {alias} failed: ssh exited {done.returncode}: {last}")


def is_full_deploy(params: BuildParams) -> bool:
    """The Jenkinsfile's rule for recording the site's revision: every instance, for real."""
    return not (params.lifecycle_actions or params.instance_ids or params.dry_run)


def deploy(params: BuildParams, config: str, state_dir: Path) -> None:
    """One build; the helper's AWS clients use this process's environment (see main)."""
    _misbehave_first(state_dir)
    if not params.site:
        raise BuildFailed("SITE is empty: name the site to deploy")
    build_dir = state_dir / "builds" / params.build_id
    build_dir.mkdir(parents=True, exist_ok=True)
    hosts = _hosts(params, config, build_dir)
    if params.instance_ids and not hosts:
        raise BuildFailed(f"none of {params.instance_ids} is in site {params.site}")
    chosen = _revision(params, config)
    print("smoke tests: skipped" if params.skip_tests else "smoke tests: passed (demo)")
    if not params.dry_run:
        _fail_once(state_dir)
    for alias, instance_id in hosts:
        print(f"{'would deploy' if params.dry_run else 'deploy'} {chosen} -> {alias}")
        if params.dry_run:
            continue
        if (state_dir / "fail" / instance_id).exists():
            raise BuildFailed(f"deploy to {instance_id} failed (fail/{instance_id})")
        write_atomic(state_dir / "hosts" / f"{alias}.revision", chosen + "\n")
        if (state_dir / REAL_HOSTS_RECORD).exists():
            _restart_app(build_dir / "ssh_config", alias, chosen)
    if is_full_deploy(params):
        _helper(["revision", "set", "-c", config, "--site", params.site, "--revision", chosen])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo-deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--endpoint-url", required=True)
    args = parser.parse_args(argv)
    params = BuildParams.from_environ(os.environ)
    os.environ.update({**SANDBOX_ENV, "AWS_ENDPOINT_URL": args.endpoint_url})
    os.environ.pop("AWS_PROFILE", None)  # a developer's profile must not steer the sandbox's clients
    try:
        deploy(params, args.config, args.state_dir)
    except BuildFailed as exc:
        print(f"ERROR: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
