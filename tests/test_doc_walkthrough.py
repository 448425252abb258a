"""Every `aws-deploy-helper ...` command that README.md and docs/*.md show, run against the sandbox
the way a newcomer runs it (issue 24): `sandbox up`, the export lines of `sandbox status` (the
README's eval line), the sandbox's demo config as deploy.yml, then each command in document order,
each its own test named by its doc and line. tests/test_doc_commands.py checks that the CLI
accepts them; this checks that they work.

What the sandbox cannot be is mapped in one place, SUBSTITUTES, each with its reason. Every
documented command runs; none is only checked with `--help`.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.sandbox.test_sandbox_up import cli, exports
from tests.test_doc_commands import COMMANDS

# word in a doc -> word run here, and why.
SUBSTITUTES = {
    "web": "workers",  # docs/operations.md and docs/rollout.md's site; the demo's group-backed site
    "/etc/aws-deploy-helper/deploy.yml": "deploy.yml",  # the systemd layout; here, the working directory
    "v40": "v1",  # docs/rollout.md's `rollback --to`: a revision this site's history holds
    "https://ci/job/deploy/12/": "https://ci.example/job/deploy/12/",  # same shape, a name nobody resolves
}
# A deploy command after `--` that is not installed here (Capistrano in the app's repository) runs as
# `true`: the rollout's batches, drains and records are what the doc shows, not Capistrano.
DEPLOY_COMMAND = ["true"]
# The sandbox's own life: the fixture runs these (one sandbox for the module).
FIXTURE_RUNS = {("sandbox", "up"), ("sandbox", "down")}
# A daemon: started, given until its first log line, then stopped as systemd stops it (SIGTERM).
DAEMON_S = 60
COMMAND_TIMEOUT_S = 120


def run_words(words: list[str]) -> list[str]:
    if "--" in words:
        at = words.index("--")
        words = words[:at + 1] + DEPLOY_COMMAND
    return [SUBSTITUTES.get(w, w) for w in words]


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    """A working directory holding deploy.yml (the demo's, with a rollout: for the docs' site) and
    the environment `eval "$(aws-deploy-helper sandbox status | grep '^export ')"` gives."""
    state = tmp_path_factory.mktemp("sandbox")
    work = tmp_path_factory.mktemp("work")
    cli("up", "--state-dir", str(state))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "JENKINS_", "SANDBOX_"))}
        env.update(exports(cli("status", "--state-dir", str(state)).stdout))
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        config = yaml.safe_load((state / "demo.yml").read_text())
        for site in ("workers", "shop"):  # the sites docs/rollout.md (via SUBSTITUTES) and README.md roll
            config["sites"][site]["rollout"] = {"batch": 1, "min_healthy": 1, "drain_timeout_s": 5,
                                                "healthy_timeout_s": 5}
        (work / "deploy.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        for rev in ("v1", "v2"):  # two full deploys, as the Jenkinsfile's Record revision stage records them
            subprocess.run([sys.executable, "-m", "helper", "revision", "set", "-c", "deploy.yml", "--site",
                            "workers", "--revision", rev], cwd=work, env=env, check=True, capture_output=True)
        yield work, env, state
    finally:
        cli("down", "--state-dir", str(state), check=False)
        shutil.rmtree(work, ignore_errors=True)


def test_the_sandbox_commands_the_docs_show_are_the_fixtures_or_run_below():
    shown = {tuple(words[:2]) for _, words in COMMANDS if words[0] == "sandbox"}
    assert ("sandbox", "up") in shown and ("sandbox", "down") in shown


@pytest.mark.parametrize("where, words", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_each_documented_command_works_against_the_sandbox(newcomer, where, words):
    work, env, state = newcomer
    if tuple(words[:2]) in FIXTURE_RUNS:
        return  # the module's fixture ran it, as the doc says, and the other tests depend on it
    argv = [sys.executable, "-m", "helper", *run_words(words)]
    if words[0] == "sandbox":
        argv += ["--state-dir", str(state)]
    if words[0] == "consume" and "--once" not in words:
        daemon = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        try:
            ready, _, _ = select.select([daemon.stdout], [], [], DAEMON_S)
            first = daemon.stdout.readline() if ready else ""
            assert first, f"{where}: the consumer said nothing in {DAEMON_S} s, or exited ({daemon.poll()})"
        finally:
            daemon.send_signal(signal.SIGTERM)
            status = daemon.wait(DAEMON_S)
        assert status == 0, f"{where}: `{' '.join(words)}` stopped with {status}: {first}"
        return
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert done.returncode == 0, (f"{where}: `aws-deploy-helper {' '.join(words)}` exited {done.returncode}:\n"
                                  f"{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
