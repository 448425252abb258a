"""`aws-deploy-helper sandbox up`: one command, both emulators, the demo fleet wired for lifecycle deploys.

The CLI runs in a subprocess, as a user runs it; everything is then checked through the clients
the project uses (boto3, python-jenkins) with the environment `up` tells the user to export.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests

import jenkins
from helper.errors import HelperError
from helper.sandbox.demo import jobs
from helper.sandbox.jenkins.emulator import JenkinsEmulator
from helper.settings import load_config
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_PARAMETERS = {"SITE", "INSTANCE_IDS", "REVISION", "LIFECYCLE_ACTIONS", "DRY_RUN", "SKIP_TESTS", "ROLLBACK"}
REGION = "us-east-1"
EXPORT_RE = re.compile(r"^export [A-Z_]+=")


def cli(*args: str, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "JENKINS_", "SANDBOX_"))}
    env.update(extra_env)
    return subprocess.run([sys.executable, "-m", "helper", "sandbox", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=check)


def exports(stdout: str) -> dict[str, str]:
    """The `export NAME=value` lines, read the way a shell would."""
    pairs = [shlex.split(line)[1] for line in stdout.splitlines() if EXPORT_RE.match(line)]
    return dict(pair.split("=", 1) for pair in pairs)


@dataclass(frozen=True)
class Sandbox:
    state_dir: Path
    stdout: str
    env: dict[str, str]

    @property
    def state(self) -> dict:
        return json.loads((self.state_dir / "state.json").read_text())

    def aws(self, service: str):
        return boto3.client(service, endpoint_url=self.env["AWS_ENDPOINT_URL"], region_name=REGION,
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                            aws_session_token=self.env["AWS_SESSION_TOKEN"])

    def jenkins(self) -> jenkins.Jenkins:
        return jenkins.Jenkins(self.env["JENKINS_URL"], self.env["JENKINS_USER"], self.env["JENKINS_API_TOKEN"],
                               timeout=10)


def start(state_dir: Path, *flags: str) -> Sandbox:
    up = cli("up", "--state-dir", str(state_dir), *flags)
    return Sandbox(state_dir, up.stdout, exports(up.stdout))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("sandbox")
    try:
        yield start(state_dir)
    finally:
        cli("down", "--state-dir", str(state_dir), check=False)


def receive_until(sqs, queue_url: str, wanted, what: str) -> dict:
    """Consume the queue (deleting what we read, so nothing is redriven) until `wanted(body)`."""
    def poll():
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        found = None
        for message in messages.get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            found = found or (body if wanted(body) else None)
        return found

    return wait_for(poll, what)


def run_build(server: jenkins.Jenkins, params: dict) -> dict:
    queue_id = server.build_job("deploy", params)
    item = wait_for(lambda: server.get_queue_item(queue_id).get("executable"), f"queue item {queue_id}")
    info = wait_for(lambda: (lambda i: None if i["building"] else i)(server.get_build_info("deploy", item["number"])),
                    f"deploy #{item['number']} to finish")
    info["console"] = server.get_build_console_output("deploy", item["number"])
    return info


def scale_out_by_one(sandbox: Sandbox) -> str:
    """Raise workers-asg's desired capacity by one; returns the new instance's id."""
    asg = sandbox.aws("autoscaling")
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["workers-asg"])["AutoScalingGroups"][0]
    before = {i["InstanceId"] for i in group["Instances"]}
    asg.set_desired_capacity(AutoScalingGroupName="workers-asg", DesiredCapacity=group["DesiredCapacity"] + 1)
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["workers-asg"])["AutoScalingGroups"][0]
    (new,) = [i for i in group["Instances"] if i["InstanceId"] not in before]
    assert new["LifecycleState"] == "Pending:Wait"
    return new["InstanceId"]


JJB_DEPLOY = """\
- job:
    name: deploy
    concurrent: false
    parameters:
      - string: {name: SITE, default: ""}
      - string: {name: INSTANCE_IDS, default: ""}
      - string: {name: REVISION, default: ""}
      - text: {name: LIFECYCLE_ACTIONS, default: ""}
      - bool: {name: DRY_RUN, default: false}
      - bool: {name: SKIP_TESTS, default: false}
      - bool: {name: ROLLBACK, default: false}
      - choice: {name: ENVIRONMENT, choices: [staging, production]}
    builders:
      - shell: !include-raw: deploy.sh
"""


def test_deploy_job_comes_from_its_jenkins_job_builder_file(tmp_path):
    definition = tmp_path / "deploy.yaml"
    definition.write_text(JJB_DEPLOY)
    with JenkinsEmulator() as emulator:
        found = jobs.add_deploy_job(emulator, "true", definition)
        info = jenkins.Jenkins(emulator.url, "admin", "token", timeout=10).get_job_info("deploy")

    assert found == str(definition)
    (definitions,) = [p["parameterDefinitions"] for p in info["property"] if "parameterDefinitions" in p]
    assert {d["name"] for d in definitions} == DEPLOY_PARAMETERS | {"ENVIRONMENT"}


@pytest.mark.parametrize("jjb, refusal", [
    (JJB_DEPLOY.replace("- choice:", "- file:"), "the Jenkins emulator cannot load it"),  # a type it cannot load
    (JJB_DEPLOY.replace("name: deploy", "name: release"), "defines no 'deploy' job"),
    (None, "is missing; reinstall aws-deploy-helper"),  # e.g. a wheel built without its package data
], ids=["unloadable", "no-deploy-job", "missing"])
def test_a_deploy_job_definition_it_cannot_use_is_an_error_not_a_silent_fallback(tmp_path, jjb, refusal):
    definition = tmp_path / "deploy.yaml"
    if jjb is not None:
        definition.write_text(jjb)
    with JenkinsEmulator() as emulator, pytest.raises(HelperError, match=refusal):
        jobs.add_deploy_job(emulator, "true", definition)


def test_the_packaged_job_definition_is_jenkins_jobs_deploy_yaml():
    assert jobs.JOB_DEFINITION.read_bytes() == (ROOT / "jenkins" / "jobs" / "deploy.yaml").read_bytes()


def test_a_wheel_carries_the_job_definition_and_the_sandbox_reads_it_from_there(tmp_path):
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "-z", "--", "helper", "jenkins/jobs", "setup.cfg", "pyproject.toml",
                              "README.md", "docs", "contrib"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    packaged = "helper/sandbox/jenkins/jobs/deploy.yaml"
    for name in sorted(set(filter(None, tracked)) | {packaged}):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name, follow_symlinks=False)  # the package keeps its symlink
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", ".", "-w", str(tmp_path)],
                           cwd=source, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("aws_deploy_helper-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(packaged) == (ROOT / "jenkins" / "jobs" / "deploy.yaml").read_bytes()
        # Issue 24: --help points at docs/ and contrib/systemd/, which the wheel did not carry.
        shipped = {n.split(".data/data/share/doc/aws-deploy-helper/", 1)[1] for n in archive.namelist()
                   if ".data/data/share/doc/aws-deploy-helper/" in n}
        assert {"README.md", "docs/sandbox.md", "docs/operations.md",
                "contrib/systemd/aws-deploy-helper-consumer.service"} <= shipped, shipped
        archive.extractall(tmp_path / "installed")

    # Run from the unpacked wheel, away from the checkout: the job's parameters come from the packaged file.
    probe = (
        "import jenkins; from helper.sandbox.demo import jobs; from helper.sandbox.jenkins.emulator import JenkinsEmulator\n"
        "with JenkinsEmulator() as e:\n"
        "    print(jobs.add_deploy_job(e, 'true'))\n"
        "    info = jenkins.Jenkins(e.url, 'admin', 'token', timeout=10).get_job_info('deploy')\n"
        "print(' '.join(d['name'] for p in info['property'] for d in p.get('parameterDefinitions', [])))\n"
    )
    ran = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "installed")})
    assert ran.returncode == 0, ran.stderr
    where, names = ran.stdout.splitlines()
    assert where == str(tmp_path / "installed" / packaged)
    assert set(names.split()) == DEPLOY_PARAMETERS


def test_sandbox_up_without_the_sandbox_extra_says_what_to_install(tmp_path):
    # A `moto` that cannot be imported, first on the path: as if the extra were not installed.
    (tmp_path / "shadow" / "moto").mkdir(parents=True)
    (tmp_path / "shadow" / "moto" / "__init__.py").write_text("raise ImportError(\"No module named 'moto'\")\n")

    up = cli("up", "--state-dir", str(tmp_path / "state"), check=False, PYTHONPATH=str(tmp_path / "shadow"))

    assert up.returncode == 1
    assert up.stderr == ("aws-deploy-helper: the sandbox needs moto, which is not installed: "
                         "pip install 'aws-deploy-helper[sandbox]'\n")
    assert up.stdout == "" and not (tmp_path / "state" / "state.json").exists()


# -- one command -----------------------------------------------------------------------------------------


def test_up_and_status_print_both_endpoints_and_the_environment_to_export(sandbox):
    status = cli("status", "--state-dir", str(sandbox.state_dir))
    state = sandbox.state

    assert status.stdout == sandbox.stdout
    for endpoint in (state["aws_endpoint"], state["jenkins_url"], state["queue_url"], state["dlq_url"]):
        assert endpoint.startswith(("http://127.0.0.1:", "http://localhost:")) and endpoint in status.stdout
    assert sandbox.env["AWS_ENDPOINT_URL"] == state["aws_endpoint"]
    assert sandbox.env["JENKINS_URL"] == state["jenkins_url"]
    assert sandbox.env["JENKINS_API_TOKEN"] == state["jenkins_api_token"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "JENKINS_USER"} <= set(sandbox.env)


def test_the_api_token_is_made_up_at_start_and_kept_out_of_logs_and_config(sandbox):
    token = sandbox.env["JENKINS_API_TOKEN"]

    assert len(token) >= 32 and token not in ("token", "password")
    assert (sandbox.state_dir / "state.json").stat().st_mode & 0o777 == 0o600
    assert (sandbox.state_dir / "jenkins-credentials").stat().st_mode & 0o777 == 0o600
    assert token not in (sandbox.state_dir / "sandbox.log").read_text()
    assert token not in (sandbox.state_dir / "demo.yml").read_text()
    with pytest.raises(jenkins.JenkinsException):
        jenkins.Jenkins(sandbox.env["JENKINS_URL"], sandbox.env["JENKINS_USER"], "wrong", timeout=10).get_jobs()


def test_demo_config_loads_and_routes_workers_asg_through_the_queue_to_jenkins(sandbox):
    config = load_config(sandbox.state["config"])

    assert config.paths.revision_dir == str(sandbox.state_dir.resolve() / "revisions")
    assert config.lifecycle.queue_url == sandbox.state["queue_url"]
    assert config.lifecycle.jenkins.url == sandbox.env["JENKINS_URL"]
    assert config.lifecycle.jenkins.job == "deploy"
    assert config.lifecycle.groups["workers-asg"].site == "workers"


def test_jenkins_has_the_deploy_job_with_its_six_parameters(sandbox):
    info = sandbox.jenkins().get_job_info("deploy")

    (definitions,) = [p["parameterDefinitions"] for p in info["property"] if "parameterDefinitions" in p]
    assert {d["name"] for d in definitions} == DEPLOY_PARAMETERS
    assert info["concurrentBuild"] is False


def test_launch_hook_targets_the_queue_which_redrives_to_the_dlq(sandbox):
    state, sqs = sandbox.state, sandbox.aws("sqs")

    (hook,) = sandbox.aws("autoscaling").describe_lifecycle_hooks(AutoScalingGroupName="workers-asg")["LifecycleHooks"]
    assert hook["LifecycleHookName"] == "deploy-on-launch"
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert hook["NotificationTargetARN"] == state["queue_arn"]
    assert (hook["HeartbeatTimeout"], hook["DefaultResult"]) == (60, "ABANDON")
    assert hook["RoleARN"].startswith("arn:aws:iam::")
    attributes = sqs.get_queue_attributes(QueueUrl=state["queue_url"], AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=state["dlq_url"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq_arn
    assert int(redrive["maxReceiveCount"]) == 5
    assert attributes["QueueArn"] == state["queue_arn"]
    test = receive_until(sqs, state["queue_url"], lambda b: b.get("Event") == "autoscaling:TEST_NOTIFICATION",
                         "the hook's test notification")
    assert test["AutoScalingGroupName"] == "workers-asg"


def test_scale_out_notifies_the_queue_and_the_new_instance_waits(sandbox):
    new_id = scale_out_by_one(sandbox)

    notice = receive_until(sandbox.aws("sqs"), sandbox.state["queue_url"],
                           lambda b: b.get("EC2InstanceId") == new_id, f"the launch notification for {new_id}")
    assert notice["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert notice["LifecycleHookName"] == "deploy-on-launch"
    assert notice["LifecycleActionToken"]


def test_full_deploy_of_shop_writes_every_host_and_records_the_revision(sandbox):
    shop_ids = {i["InstanceId"] for r in sandbox.aws("ec2").describe_instances(
        Filters=[{"Name": "tag:Name", "Values": ["shop-elb"]}])["Reservations"] for i in r["Instances"]}

    build = run_build(sandbox.jenkins(), {"SITE": "shop", "REVISION": "v42"})

    assert build["result"] == "SUCCESS", build["console"]
    written = sorted((sandbox.state_dir / "hosts").glob("shop-i-*.revision"))
    assert {p.name[len("shop-"):-len(".revision")] for p in written} == shop_ids
    assert {p.read_text() for p in written} == {"v42\n"}
    assert (sandbox.state_dir / "revisions" / "shop.revision").read_text() == "v42\n"


def test_scale_up_build_pins_the_recorded_revision_on_the_new_instance_only(sandbox):
    new_id = scale_out_by_one(sandbox)

    build = run_build(sandbox.jenkins(), {"SITE": "workers", "INSTANCE_IDS": new_id, "LIFECYCLE_ACTIONS": "demo"})

    assert build["result"] == "SUCCESS", build["console"]
    assert [p.name for p in (sandbox.state_dir / "hosts").glob("workers-*.revision")] == [
        f"workers-{new_id}.revision"]
    assert (sandbox.state_dir / "hosts" / f"workers-{new_id}.revision").read_text() == "demo-1\n"


def test_parameters_are_data_not_shell(sandbox, tmp_path):
    marker = tmp_path / "injected"

    build = run_build(sandbox.jenkins(), {"SITE": "api", "REVISION": f"x;touch {marker}", "DRY_RUN": "true"})

    assert build["result"] == "FAILURE"
    assert "must match" in build["console"]
    assert not marker.exists()


def test_down_stops_both_emulators_and_the_process(tmp_path):
    try:
        sandbox = start(tmp_path, "--time-scale", "30")
        state = sandbox.state
        down = cli("down", "--state-dir", str(tmp_path))
    finally:
        cli("down", "--state-dir", str(tmp_path), check=False)

    assert state["time_scale"] == 30.0 and "sandbox clock:     x30" in sandbox.stdout
    assert down.stdout.strip() == "sandbox stopped"
    assert not (tmp_path / "state.json").exists()
    assert not (tmp_path / "jenkins-credentials").exists()
    for url in (state["aws_endpoint"], state["jenkins_url"]):
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)
    with pytest.raises(ProcessLookupError):
        os.kill(state["pid"], 0)
    assert cli("status", "--state-dir", str(tmp_path), check=False).returncode == 1


def test_scale_sets_the_desired_capacity_and_lists_each_instance(sandbox):
    group = sandbox.aws("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["workers-asg"])["AutoScalingGroups"][0]
    shown = cli("scale", "--state-dir", str(sandbox.state_dir), "workers-asg", str(group["DesiredCapacity"] + 1))
    lines = shown.stdout.splitlines()
    assert len(lines) == group["DesiredCapacity"] + 1
    assert sum(" Pending:Wait " in line for line in lines) >= 1
    assert all(line.startswith("workers-asg i-") and " revision=" in line for line in lines)
    missing = cli("scale", "--state-dir", str(sandbox.state_dir), "no-such-asg", check=False)
    assert missing.returncode == 1 and "no Auto Scaling group 'no-such-asg'" in missing.stderr


def test_the_demo_shows_a_new_instance_outside_its_load_balancer_until_its_deploy_completes(sandbox):
    def listed(instance_id: str) -> str:
        shown = cli("scale", "--state-dir", str(sandbox.state_dir), "workers-asg").stdout.splitlines()
        (line,) = [line for line in shown if f" {instance_id} " in line]
        return line

    before = cli("scale", "--state-dir", str(sandbox.state_dir), "workers-asg").stdout.splitlines()
    in_service = [line for line in before if " InService " in line]
    assert in_service and all(line.endswith(" load_balancer=in") for line in in_service)
    new_id = scale_out_by_one(sandbox)
    assert listed(new_id).endswith(" Pending:Wait revision=none yet load_balancer=out")

    consume = subprocess.run(
        [sys.executable, "-m", "helper", "consume", "-c", str(sandbox.state_dir / "demo.yml"), "--once"],
        env={**os.environ, **sandbox.env}, capture_output=True, text=True, timeout=120)

    assert consume.returncode == 0, consume.stderr
    line = listed(new_id)
    assert " InService " in line and line.endswith(" load_balancer=in"), line
    assert " revision=none yet" not in line


# --- issue 19 items 10 and 23: the sandbox's own files are read as untrusted -----------------------------

@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_text("{not json"), "not a sandbox record (not JSON)"),
    (lambda p: p.write_text("[1, 2]"), "not a sandbox record (not a JSON object)"),
    (lambda p: p.write_text('{"pid": "1"}'), "pid missing or not a int"),
    (lambda p: os.mkfifo(p), "is a FIFO, not a regular file"),
    (lambda p: os.symlink("/etc/hostname", p), "not a regular file"),
], ids=["garbage", "a list", "a pid as text", "a FIFO", "a link"])
def test_a_bad_state_file_is_one_line_and_exit_2_never_a_traceback_or_a_hang(tmp_path, write, message):
    write(tmp_path / "state.json")
    for action in ("status", "down"):
        done = cli(action, "--state-dir", str(tmp_path), check=False)
        assert done.returncode == 2, (action, done.stderr)
        assert done.stderr.strip().count("\n") == 0 and message in done.stderr, done.stderr
        assert str(tmp_path / "state.json") in done.stderr


def test_down_kills_no_process_and_removes_no_directory_that_a_forged_record_names(tmp_path):
    """A reused pid was killed, and the record's workdir removed with rm -rf."""
    import json as json_mod

    stranger = subprocess.Popen(["sleep", "60"])
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("mine\n")
    try:
        (tmp_path / "state.json").write_text(json_mod.dumps({"pid": stranger.pid}))
        done = cli("down", "--state-dir", str(tmp_path), check=False)
        assert done.returncode == 0 and "sandbox was not running" in done.stdout, done.stderr
        (tmp_path / "hosts.json").write_text(json_mod.dumps({"pid": stranger.pid, "tag": "zz9", "workdir": str(precious)}))
        cli("down", "--state-dir", str(tmp_path), check=False)
        assert stranger.poll() is None, "the unrelated process still runs"
        assert (precious / "keep").read_text() == "mine\n", "the named directory is untouched"
        (tmp_path / "hosts.json").write_text(json_mod.dumps({"pid": stranger.pid, "tag": ""}))
        done = cli("down", "--state-dir", str(tmp_path), check=False)
        assert done.returncode == 2 and "tag is not one we make" in done.stderr, done.stderr
    finally:
        stranger.kill()
        stranger.wait()
