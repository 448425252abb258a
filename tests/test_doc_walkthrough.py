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
import re
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
    "web": "workers",  # docs/rollout.md's site (not ours to edit); the demo's group-backed site
    "/etc/aws-deploy-helper/deploy.yml": "deploy.yml",  # the systemd layout; here, the working directory
    "v40": "v1",  # docs/rollout.md's `rollback --to`: a revision this site's history holds
}
# A deploy command after `--` that is not installed here (Capistrano in the app's repository) runs as
# `true`: the rollout's batches, drains and records are what the doc shows, not Capistrano.
DEPLOY_COMMAND = ["true"]
# The sandbox's own life: the fixture runs these, exactly as written plus --state-dir (one sandbox
# for the module); the test of their doc line checks the fixture ran that line.
FIXTURE_RUNS = {("sandbox", "up"), ("sandbox", "down")}
# Exit status each command promises where it is not 0. `rollout status` exits 1 only while a
# rollout has hosts out; here every rollout before it finished, so 0 is the promise too. `doctor`
# exits 1 on a FAIL finding: after the README's `hooks install` a fresh sandbox has none.
EXIT_STATUS: dict[tuple[str, ...], int] = {}
# doctor's documented form: "one line per finding", each LEVEL SUBJECT TEXT (helper/setup/findings.py),
# then one line of counts.
FINDING = re.compile(r"(OK|WARN|FAIL) \S+ \S")
COUNTS = re.compile(r"doctor: \d+ ok, \d+ warning\(s\), (?P<fails>\d+) failure\(s\)$")
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
    """A working directory holding deploy.yml (the demo's, with a rollout: for the docs' sites), the
    environment `eval "$(aws-deploy-helper sandbox status | grep '^export ')"` gives, and the
    sandbox command lines this fixture ran."""
    state = tmp_path_factory.mktemp("sandbox")
    work = tmp_path_factory.mktemp("work")
    ran: list[tuple[str, ...]] = []

    def sandbox(*words: str, check: bool = True) -> subprocess.CompletedProcess:
        ran.append(("sandbox", *words))
        return cli(*words, "--state-dir", str(state), check=check)

    sandbox("up")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "JENKINS_", "SANDBOX_"))}
        env.update(exports(sandbox("status").stdout))
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        config = yaml.safe_load((state / "demo.yml").read_text())
        for site in ("workers", "shop"):  # the sites docs/rollout.md (via SUBSTITUTES) and README.md roll
            config["sites"][site]["rollout"] = {"batch": 1, "min_healthy": 1, "drain_timeout_s": 5,
                                                "healthy_timeout_s": 5}
        (work / "deploy.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        for rev in ("v1", "v2"):  # two full deploys, as the Jenkinsfile's Record revision stage records them
            subprocess.run([sys.executable, "-m", "helper", "revision", "set", "-c", "deploy.yml", "--site",
                            "workers", "--revision", rev], cwd=work, env=env, check=True, capture_output=True)
        ran.append(("sandbox", "down"))  # what the teardown below runs, and checks
        yield work, env, state, ran
    finally:
        down = cli("down", "--state-dir", str(state), check=False)
        shutil.rmtree(work, ignore_errors=True)
    assert down.returncode == 0, f"`aws-deploy-helper sandbox down` exited {down.returncode}: {down.stderr}"


def test_the_docs_show_the_sandbox_life_the_fixture_runs():
    shown = {tuple(words[:2]) for _, words in COMMANDS if words[0] == "sandbox"}
    assert FIXTURE_RUNS <= shown


@pytest.mark.parametrize("where, words", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_each_documented_command_works_against_the_sandbox(newcomer, where, words):
    work, env, state, ran = newcomer
    if tuple(words[:2]) in FIXTURE_RUNS:
        assert tuple(words) in ran, f"{where}: the fixture never ran `aws-deploy-helper {' '.join(words)}`"
        return
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
    promised = EXIT_STATUS.get(tuple(words[:2]), 0)
    assert done.returncode == promised, (f"{where}: `aws-deploy-helper {' '.join(words)}` exited "
                                         f"{done.returncode}, not {promised}:\n{done.stdout[-1500:]}\n"
                                         f"{done.stderr[-1500:]}")
    if words[0] == "doctor":
        *findings, counts = [line for line in done.stdout.splitlines() if line.strip()]
        assert findings and all(FINDING.match(line) for line in findings), f"{where}: not one finding a line"
        assert COUNTS.match(counts) and COUNTS.match(counts)["fails"] == "0", f"{where}: {counts}"
        assert not [line for line in findings if line.startswith("FAIL")], f"{where}: a fresh sandbox FAILs"
