"""Real deploys for tests: an app repository, the deploy job running the real Jenkinsfile with
Capistrano (tests/capapp), and a real SSH host (helper/sandbox/hosts.py) for every instance moto runs.

The Jenkins job is what a real one is: a checkout of the Capistrano app as its workspace, then the
Jenkinsfile in the Groovy stub runner, with the Jenkinsfile's default DEPLOY_COMMAND
(`cap "$SITE" deploy`). Revisions are read from the hosts themselves, never from the runner.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import jenkins
from helper.sandbox import fleet_hosts
from helper.sandbox.aws import fleet
from helper.sandbox.hosts import HostNetwork, SshHost, available
from helper.sandbox.jenkins.emulator import JenkinsEmulator
from tests.polling import wait_for
from tests.scenario import JENKINS_TOKEN, JENKINS_USER, REGION, SITE, Scenario

ROOT = Path(__file__).resolve().parent.parent
CAPAPP = ROOT / "tests" / "capapp"
DEPLOY_TO = "/srv/app"  # config/deploy.rb's deploy_to
TAGS = ("v1", "v2", "v3")
# A new instance's sshd is up well before its scale-up build connects: the consumer's batch window,
# Jenkins' quiet period and the JVM start of the stub runner take seconds; a poll takes milliseconds.
POLL_INTERVAL_S = 0.05
# Seconds for one pipeline build: JVM start, the helper twice, and Capistrano's dozen commands.
BUILD_TIMEOUT_S = 90
LIFECYCLE_TIMEOUT_S = 120  # a scale-up: consumer batch, build, completion, Auto Scaling's InService
HELPER = str(Path(sys.executable).with_name("aws-deploy-helper"))


def unavailable() -> str | None:
    """Why real deploys cannot run here (for pytest.skip), or None."""
    for tool, package in (("cap", "capistrano"), ("groovy", "groovy"), ("git", "git")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: {package})"
    return available()


def needs_real_hosts():
    """pytest's mark for these tests: skipped, with the reason, where real hosts cannot be made
    (non-root dev machines); never on CI, which runs as root, so a broken CI machine fails loudly."""
    reason = unavailable()
    return pytest.mark.skipif(reason is not None and os.environ.get("CI") != "true", reason=reason or "")


def app_repository(tmp: Path) -> tuple[str, dict[str, str]]:
    """A bare git repository with one commit per tag in TAGS: (file:// URL, {tag: commit})."""
    work, bare = tmp / "app-src", tmp / "app.git"
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-C", str(work)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    commits = {}
    for tag in TAGS:
        (work / "VERSION").write_text(f"{tag}\n")
        subprocess.run([*git, "add", "VERSION"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", f"release {tag}"], check=True)
        subprocess.run([*git, "tag", tag], check=True)
        commits[tag] = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                                      text=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return f"file://{bare}", commits


def deploy_job_command(config_path: Path, repo_url: str, agent_home: Path | None = None) -> str:
    """The emulator's command for the `deploy` job: check out the app, run the Jenkinsfile.

    `agent_home` stands in for the Jenkins agent's home directory (its ~/.ssh). OpenSSH takes ~
    from the password database, not $HOME, so the build runs in a mount namespace of its own where
    /etc/passwd is a copy that gives the runner's user that home; the runner's files stay as they
    are, and everything else (this venv's Python lives under the real home) still resolves."""
    env = {
        "DEPLOY_CONFIG": str(config_path),
        "HELPER_BIN": HELPER,
        "REPO_URL": repo_url,
    }
    # No DEPLOY_COMMAND: the Jenkinsfile's default, `cap "$SITE" deploy`, is what runs.
    command = f'unset DEPLOY_COMMAND && cp -R {shlex.quote(str(CAPAPP))}/. "$WORKSPACE"/ && '
    command += " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command += " exec"
    if agent_home is not None:
        passwd = agent_home.with_name(agent_home.name + ".passwd")
        passwd.write_text(_passwd_with_home(Path("/etc/passwd").read_text(), os.getuid(), agent_home))
        command += (" unshare --mount --propagation private sh -c"
                    " 'mount --bind \"$1\" /etc/passwd && shift && exec \"$@\"' sh " + shlex.quote(str(passwd)))
    command += f' {shlex.quote(str(ROOT / "jenkins/stub/run-pipeline"))} --workspace "$WORKSPACE" '
    return command + shlex.quote(str(ROOT / "Jenkinsfile"))


def _passwd_with_home(passwd: str, uid: int, home: Path) -> str:
    lines = []
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) == 7 and fields[2] == str(uid):
            fields[5] = str(home)
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def deployed_revision(host: SshHost) -> str | None:
    """The commit the host's `current` release holds, as the host sees its own files."""
    result = host.run(["cat", f"{DEPLOY_TO}/current/REVISION"], check=False)
    return result.stdout.strip() if result.returncode == 0 else None


class FleetHosts(fleet_hosts.FleetHosts):
    """The sandbox's watcher (helper/sandbox/fleet_hosts.py): a host for every pending or running
    instance in moto. `fail_next_boots(n)` makes the next n new instances' sshd never come up."""

    def __init__(self, network: HostNetwork, ec2) -> None:
        self._dead_boots = 0
        super().__init__(network, ec2, poll_interval_s=POLL_INTERVAL_S)

    def revision(self, instance_id: str) -> str | None:
        return deployed_revision(self.host(instance_id))

    def fail_next_boots(self, count: int = 1) -> None:
        with self._lock:
            self._dead_boots += count

    def boots(self, instance_id: str) -> bool:  # called under the lock, by sync()
        if self._dead_boots == 0:
            return True
        self._dead_boots -= 1
        return False


class Builds:
    """The `deploy` job of a Jenkins emulator, driven as a user would (python-jenkins)."""

    def __init__(self, emulator: JenkinsEmulator) -> None:
        self.emulator = emulator
        self.client = jenkins.Jenkins(emulator.url, JENKINS_USER, JENKINS_TOKEN, timeout=10)

    def all(self):
        return self.emulator.builds("deploy")

    def run(self, **params: str):
        """Start a build with `params` (tests skipped) and return its record once it finished."""
        before = len(self.all())
        self.client.build_job("deploy", {"SKIP_TESTS": "true", **params})
        return wait_for(lambda: len(self.all()) > before and self.all()[before].result and self.all()[before],
                        timeout_s=BUILD_TIMEOUT_S, what=f"build {params}")

    def known_hosts(self) -> dict[str, str]:
        """The job's known_hosts: alias -> "type key" (the workspace persists between builds)."""
        workspace = self.all()[-1].console.split("Building in workspace ", 1)[1].split("\n", 1)[0]
        lines = (Path(workspace) / "deploy-out" / "known_hosts").read_text().splitlines()
        return {fields[0]: " ".join(fields[1:3]) for fields in map(str.split, lines) if fields}


@dataclass
class World:
    """Scenario's scale-up world (moto, Jenkins emulator, consumer) on real hosts."""
    aws: Scenario
    hosts: FleetHosts
    builds: Builds
    commits: dict[str, str]

    def revisions(self, instance_ids) -> list[str | None]:
        return [self.hosts.revision(i) for i in instance_ids]

    def record(self, revision: str) -> None:
        """What a full deploy's post step does: record the revision the site runs."""
        subprocess.run([HELPER, "revision", "set", "-c", str(self.aws.config_path), f"--site={SITE}",
                        f"--revision={revision}"], check=True, capture_output=True)


@contextmanager
def scale_up_world(aws_url: str, tmp: Path, network: HostNetwork, app: tuple[str, dict[str, str]]):
    """Scenario (a group of 2 behind web-elb, hooks, consumer, Jenkins) with a real host per
    instance and the real deploy job; the site's user and key are the test hosts'."""
    repo_url, commits = app
    scenario = Scenario(aws_url, tmp, site={"elb": "web-elb", "user": "root",
                                            "identity_file": str(network.deploy_key)},
                        quiet_period_s=0.2, jenkins_deadline_s=LIFECYCLE_TIMEOUT_S)
    hosts = None
    try:
        hosts = FleetHosts(network, fleet.client("ec2", aws_url, REGION))
        command = deploy_job_command(scenario.config_path, repo_url)
        assert scenario.jenkins.add_jobs_from_jjb(ROOT / "jenkins/jobs/deploy.yaml", commands={"deploy": command}) == ["deploy"]
        yield World(scenario, hosts, Builds(scenario.jenkins), commits)
    finally:
        try:
            scenario.close()
        finally:
            if hosts is not None:
                hosts.close()
