"""The Jenkins side: the Jenkinsfile on Groovy 2.4, the JJB job definition, and whole builds run by the
pipeline stub (jenkins/stub/) against moto server, directly and as the Jenkins emulator's build command.

Groovy missing skips the stub's tests, except on CI (CI=true), where it fails them: there a skip would
hide that the Jenkinsfile was never run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

import jenkins
from helper.cli import main
from helper.sandbox.aws import fleet
from helper.sandbox.jenkins.emulator import JenkinsEmulator
from tests.units import HELPER_BIN

ROOT = Path(__file__).resolve().parent.parent
JENKINSFILE = ROOT / "Jenkinsfile"
JOBS_DIR = ROOT / "jenkins" / "jobs"
STUB = ROOT / "jenkins" / "stub" / "run-pipeline"
FIXTURES = Path(__file__).resolve().parent / "jenkins_fixtures"
# A JVM starts in 1-2 s and a whole build here takes a few more; this only stops a hang.
STUB_TIMEOUT_S = 120
# The Jenkins emulator runs one stub build; generous for a loaded CI machine.
BUILD_TIMEOUT_S = 120
STAGES = ["Setup", "Test", "Resolve revision", "Hold fleet", "Inventory", "Deploy", "Verify", "Record revision"]
PARAMETERS = {"SITE": "string", "INSTANCE_IDS": "string", "REVISION": "string", "LIFECYCLE_ACTIONS": "string",
              "DRY_RUN": "bool", "SKIP_TESTS": "bool", "ROLLBACK": "bool"}
# Stand-ins for the agent's programs: fast, local, and leaving evidence in the workspace.
TEST_COMMAND = "touch tests-ran"
DEPLOY_COMMAND = 'printf "%s\\n" "$REVISION" > deployed-revision && cp "$CAP_CONFIG" deployed-cap.yml'


@pytest.fixture(scope="module")
def stub() -> Path:
    if shutil.which(os.environ.get("GROOVY", "groovy")) is None:
        if os.environ.get("CI") == "true":
            pytest.fail("groovy is not installed; on CI the Jenkinsfile must be checked (apt-get install groovy)")
        pytest.skip("groovy is not installed (Debian: apt-get install groovy); the Jenkinsfile is unchecked")
    return STUB


def run_stub(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The stub's console (stdout and stderr in order) and exit status."""
    return subprocess.run([str(STUB), *args], cwd=cwd, env={**os.environ, **(env or {})}, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=STUB_TIMEOUT_S)


def stage_lines(console: str) -> dict[str, str]:
    """{stage: 'ran' | 'skipped (when)' | 'would run' | ...} from the stub's STAGE lines."""
    found = {}
    for line in console.splitlines():
        if line.startswith("STAGE "):
            name, _, state = line[len("STAGE "):].partition(": ")
            found[name] = state
    return found


def agent_env(config: Path) -> dict[str, str]:
    """What a Jenkins agent would set for the job: the helper already installed, fast stand-in commands."""
    return {"HELPER_BIN": str(HELPER_BIN), "DEPLOY_CONFIG": str(config), "TEST_COMMAND": TEST_COMMAND,
            "DEPLOY_COMMAND": DEPLOY_COMMAND}


def site_config(tmp_path: Path, aws: str) -> Path:
    dns = fleet.classic_elb_site(aws, "us-east-1", "web-elb", 2)
    config = {"path": {"revision_dir": str(tmp_path / "revisions")},
              "defaults": {"user": "deploy"},
              "sites": {"web": {"elb": dns, "region": "us-east-1"}}}
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def instance_ids(aws: str) -> list[str]:
    reservations = fleet.client("ec2", aws, "us-east-1").describe_instances()["Reservations"]
    return sorted(i["InstanceId"] for r in reservations for i in r["Instances"])


def git_checkout(path: Path) -> str:
    """A workspace with one commit, as the job's checkout; returns its SHA."""
    path.mkdir()
    git = ["git", "-C", str(path), "-c", "user.name=ci", "-c", "user.email=ci@example.com"]
    subprocess.run(git + ["init", "-q"], check=True)
    (path / "Capfile").write_text("# the application's deploy configuration\n")
    subprocess.run(git + ["add", "Capfile"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "app"], check=True)
    return subprocess.run(git + ["rev-parse", "HEAD"], check=True, text=True, stdout=subprocess.PIPE).stdout.strip()


def cap_hosts(path: Path) -> list[str]:
    return [alias for aliases in yaml.safe_load(path.read_text())["sites"].values() for alias in aliases]


# --- Groovy 2.4 parses the Jenkinsfile, and would reject Groovy 3 syntax -------------------------------

GROOVY_3_ONLY = {
    "not-in": "def x = 1\nassert x !in [2]\n",
    "lambda": "def inc = (a) -> a + 1\n",
    "elvis-assign": "def a\na ?= 2\n",
    "not-instanceof": "def s = 'x'\nassert !(s !instanceof String)\n",
    "method-reference": "def f = String::valueOf\n",
}


@pytest.fixture(scope="module")
def parse_check(stub, tmp_path_factory) -> dict[str, str]:
    """One JVM parses the Jenkinsfile and every Groovy-3-only sample: {name: 'OK' | 'ERROR ...'}."""
    samples = tmp_path_factory.mktemp("groovy3")
    files = {"Jenkinsfile": str(JENKINSFILE)}
    for name, text in GROOVY_3_ONLY.items():
        (samples / f"{name}.groovy").write_text(text)
        files[name] = str(samples / f"{name}.groovy")
    result = run_stub("--check", *files.values(), cwd=samples)
    by_path = {}
    for line in result.stdout.splitlines():
        status, _, rest = line.partition(" ")
        path = rest.split(":")[0]
        by_path[path] = status if status == "OK" else line
    return {name: by_path.get(path, f"MISSING in: {result.stdout}") for name, path in files.items()}


def test_groovy_2_4_parses_the_jenkinsfile(parse_check):
    assert parse_check["Jenkinsfile"] == "OK"


@pytest.mark.parametrize("sample", sorted(GROOVY_3_ONLY))
def test_groovy_2_4_rejects_syntax_only_groovy_3_accepts(parse_check, sample):
    assert parse_check[sample].startswith("ERROR"), parse_check[sample]


# --- Jenkins Job Builder --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered_job(tmp_path_factory) -> ET.Element:
    out = tmp_path_factory.mktemp("jjb")
    jjb = Path(sys.executable).parent / "jenkins-jobs"
    # --config-xml: <job>/config.xml, so a folder (jenkins/jobs/library.yaml) and the jobs in it both fit.
    result = subprocess.run([str(jjb), "--conf", "/dev/null", "test", "--config-xml", str(JOBS_DIR), "-o", str(out)],
                            text=True, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return ET.parse(out / "deploy" / "config.xml").getroot()


def test_jjb_renders_a_pipeline_job_with_the_parameters_and_one_build_at_a_time(rendered_job):
    definitions = rendered_job.find("properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions")
    kinds = {"hudson.model.StringParameterDefinition": "string", "hudson.model.BooleanParameterDefinition": "bool"}
    rendered = {d.findtext("name"): kinds.get(d.tag, d.tag) for d in definitions}

    assert rendered_job.tag == "flow-definition"
    assert rendered == PARAMETERS
    # For pipeline jobs JJB renders `concurrent: false` as this property, not <concurrentBuild>.
    assert rendered_job.find("properties/org.jenkinsci.plugins.workflow.job.properties."
                             "DisableConcurrentBuildsJobProperty") is not None
    assert rendered_job.findtext("concurrentBuild", "false") == "false"
    assert 0 < int(rendered_job.findtext("quietPeriod")) <= 10
    assert rendered_job.findtext("definition/scriptPath") == "Jenkinsfile"
    assert rendered_job.find("authToken") is None  # remote callers use a user's API token


def test_the_emulator_reads_the_same_job_from_the_jjb_file():
    with JenkinsEmulator() as emulator:
        names = emulator.add_jobs_from_jjb(JOBS_DIR)
        info = jenkins.Jenkins(emulator.url, "admin", "token", timeout=10).get_job_info("deploy")

    definitions = info["property"][0]["parameterDefinitions"]
    assert names == ["deploy", "team-deploys/web"]  # the folder itself is no job to build
    assert info["concurrentBuild"] is False
    assert [d["name"] for d in definitions] == list(PARAMETERS)


# --- the stub: what would run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_listing(stub, tmp_path_factory) -> subprocess.CompletedProcess:
    return run_stub("--list", "-P", "SITE=web", str(JENKINSFILE), cwd=tmp_path_factory.mktemp("list"),
                    env={"HELPER_BIN": "", "VERIFY_COMMAND": ""})


def test_the_jenkinsfile_declares_the_parameters_of_the_job_definition(default_listing, rendered_job):
    declared = [line.split()[1].split("=")[0] for line in default_listing.stdout.splitlines()
                if line.startswith("PARAM ")]
    rendered = [d.findtext("name") for d in
                rendered_job.find("properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions")]
    assert default_listing.returncode == 0, default_listing.stdout
    assert declared == rendered


def test_a_full_deploy_runs_every_stage_but_an_unconfigured_verify(default_listing):
    expected = {name: "would run" for name in STAGES} | {"Verify": "would skip"}
    assert stage_lines(default_listing.stdout) == expected


@pytest.mark.parametrize("params, env, skipped", [
    (["LIFECYCLE_ACTIONS=web-asg:i-0123456789abcdef0:tok", "INSTANCE_IDS=i-0123456789abcdef0"], {},
     {"Test", "Hold fleet", "Record revision"}),
    (["SKIP_TESTS=true"], {}, {"Test"}),
    (["DRY_RUN=true"], {}, {"Hold fleet", "Deploy", "Verify", "Record revision"}),
    ([], {"HELPER_BIN": "/usr/bin/aws-deploy-helper"}, {"Setup"}),
], ids=["scale-up-skips-tests", "skip-tests", "dry-run-deploys-nothing", "installed-helper-skips-setup"])
def test_when_conditions_skip_exactly_these_stages(stub, tmp_path, params, env, skipped):
    args = [arg for param in ["SITE=web", *params] for arg in ("-P", param)]
    env = {"HELPER_BIN": "", "VERIFY_COMMAND": "true", **env}
    result = run_stub("--list", *args, str(JENKINSFILE), cwd=tmp_path, env=env)
    expected = {name: "would skip" if name in skipped else "would run" for name in STAGES}
    assert result.returncode == 0, result.stdout
    assert stage_lines(result.stdout) == expected


# --- the stub refuses what Jenkins would refuse (or it cannot vouch for) -------------------------------

UNKNOWN_STEP = """\
pipeline {
    agent any
    stages {
        stage('First') { steps { sh 'touch first-ran' } }
        stage('Deploy') {
            steps {
                dir('app') { deployToProduction target: 'web' }
                sh "echo ${params.SITE}"
            }
        }
    }
}
"""


def test_unknown_steps_and_interpolated_sh_fail_the_build_before_any_step_runs(stub, tmp_path):
    (tmp_path / "Jenkinsfile").write_text(UNKNOWN_STEP)
    result = run_stub("Jenkinsfile", cwd=tmp_path)
    assert result.returncode == 1
    assert "Jenkinsfile:7: unknown step 'deployToProduction'" in result.stdout
    assert "Jenkinsfile:8: sh with Groovy string interpolation" in result.stdout
    assert result.stdout.rstrip().endswith("RESULT: FAILURE")
    assert not (tmp_path / "first-ran").exists()


@pytest.mark.parametrize("where, section, message", [
    ("pipeline", "frobnicate { }", "pipeline: unknown section 'frobnicate'"),
    ("stage", "retries 3", "stage 'First': unknown section 'retries'"),
    ("stage", "when { branchName 'main' }", "when: unknown condition 'branchName'"),
])
def test_unknown_sections_fail_the_build_before_any_step_runs(stub, tmp_path, where, section, message):
    top, inner = (section, "") if where == "pipeline" else ("", section)
    stage = f"stage('First') {{ {inner}\n steps {{ sh 'touch ran' }} }}"
    (tmp_path / "Jenkinsfile").write_text(f"pipeline {{\n agent any\n {top}\n stages {{ {stage} }}\n}}\n")
    result = run_stub("Jenkinsfile", cwd=tmp_path)
    assert result.returncode == 1
    assert f"ERROR: {message}" in result.stdout
    assert "RESULT: FAILURE" in result.stdout
    assert not (tmp_path / "ran").exists()


NOT_SUPPORTED = {  # name: (where it goes in a one-stage pipeline, the text, the error)
    "sleep": ("step", "sleep 1", "step 'sleep' is not supported by the stub"),
    "dir": ("step", "dir('sub') { sh 'true' }", "step 'dir' is not supported by the stub"),
    "script": ("step", "script { sh 'true' }", "step 'script' is not supported by the stub"),
    "sh-label": ("step", "sh(script: 'true', label: 'x')", "sh with label is not supported by the stub"),
    "timestamps": ("pipeline", "options { timestamps() }", "options: option 'timestamps' is not supported by the stub"),
    "choice": ("pipeline", "parameters { choice(name: 'C', choices: ['a', 'b']) }",
               "parameters: parameter type 'choice' is not supported by the stub"),
    "post-success": ("pipeline", "post { success { sh 'true' } }",
                     "post: condition 'success' is not supported by the stub"),
    "stage-environment": ("stage", "environment { X = '1' }",
                          "stage 'First': section 'environment' is not supported by the stub"),
    "stage-post": ("stage", "post { always { sh 'true' } }", "stage 'First': section 'post' is not supported by the stub"),
    "when-not": ("stage", "when { not { expression { false } } }", "when: condition 'not' is not supported by the stub"),
}


@pytest.mark.parametrize("name", list(NOT_SUPPORTED))
def test_what_the_jenkinsfile_does_not_use_is_refused_as_not_supported(stub, tmp_path, name):
    where, text, message = NOT_SUPPORTED[name]
    top, inner, step = {"pipeline": (text, "", ""), "stage": ("", text, ""), "step": ("", "", text)}[where]
    stage = f"stage('First') {{ {inner}\n steps {{\n {step}\n sh 'touch ran' }} }}"
    (tmp_path / "Jenkinsfile").write_text(f"pipeline {{\n agent any\n {top}\n stages {{ {stage} }}\n}}\n")
    result = run_stub("Jenkinsfile", cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stdout
    assert result.stdout.rstrip().endswith("RESULT: FAILURE")
    assert not (tmp_path / "ran").exists()


def test_stub_steps_see_parameters_environment_when_and_the_timeout_option_as_jenkins_does(stub, tmp_path):
    shutil.copy(FIXTURES / "steps.Jenkinsfile", tmp_path / "Jenkinsfile")
    result = run_stub("-P", "NAME=blue", "Jenkinsfile", cwd=tmp_path, env={"STUB_TEST_UNSET": ""})
    saw = [line.removeprefix("SAW ") for line in result.stdout.splitlines() if line.startswith("SAW ")]

    assert saw == [
        "env=hello blue fallback name=blue loud=false",  # environment {} read params and env (?: fallback)
        "quiet",  # when { allOf { expression ... } } saw params and the pipeline's environment
    ]
    assert stage_lines(result.stdout) == {"Steps": "ran", "Quiet": "ran", "Loud": "skipped (when)",
                                          "Later": "failed", "Never": "skipped (earlier failure)"}
    assert "ERROR: stage Later: timeout reached while running sh" in result.stdout  # the timeout option
    assert "ARCHIVE out/**: out/kept.txt" in result.stdout and "POST always: ran" in result.stdout
    assert not (tmp_path / "never-ran").exists() and not (tmp_path / "loud-ran").exists()
    assert result.returncode == 4 and result.stdout.rstrip().endswith("RESULT: ABORTED")


# --- whole builds against moto server ----------------------------------------------------------------------


def test_full_deploy_writes_the_inventory_deploys_the_branch_head_and_records_it(stub, aws, tmp_path):
    config = site_config(tmp_path, aws)
    workspace = tmp_path / "ws"
    head = git_checkout(workspace)

    result = run_stub("-P", "SITE=web", str(JENKINSFILE), cwd=workspace, env=agent_env(config))

    out = workspace / "deploy-out"
    assert result.returncode == 0, result.stdout
    assert stage_lines(result.stdout) == {"Setup": "skipped (when)", "Test": "ran", "Resolve revision": "ran",
                                          "Hold fleet": "ran", "Inventory": "ran", "Deploy": "ran",
                                          "Verify": "skipped (when)", "Record revision": "ran"}
    assert (workspace / "tests-ran").exists()
    assert sorted(cap_hosts(out / "cap.yml")) == [f"web-{i}" for i in instance_ids(aws)]
    assert all(f"Host web-{i}" in (out / "ssh_config").read_text() for i in instance_ids(aws))
    assert (workspace / "deployed-revision").read_text() == f"{head}\n"
    assert (tmp_path / "revisions" / "web.revision").read_text() == f"{head}\n"
    archived, = [line.split(": ", 1)[1].split() for line in result.stdout.splitlines() if line.startswith("ARCHIVE ")]
    assert {"deploy-out/cap.yml", "deploy-out/ssh_config", "deploy-out/revision"} <= set(archived)
    assert result.stdout.rstrip().endswith("RESULT: SUCCESS")


def test_a_rollback_build_deploys_the_previous_revision_and_records_where_it_came_from(stub, aws, tmp_path):
    """ROLLBACK=true (issue 21): the revision the site ran before, no Test stage, and a record
    that says what it left, so a second rollback goes further back instead of returning."""
    config = site_config(tmp_path, aws)
    for rev in ("v1", "v2"):
        assert main(["revision", "set", "-c", str(config), "--site", "web", "--revision", rev]) == 0
    workspace = tmp_path / "ws"
    git_checkout(workspace)

    result = run_stub("-P", "SITE=web", "-P", "ROLLBACK=true", str(JENKINSFILE), cwd=workspace, env=agent_env(config))

    assert result.returncode == 0, result.stdout
    lines = stage_lines(result.stdout)
    assert lines["Test"] == "skipped (when)" and lines["Deploy"] == lines["Record revision"] == "ran"
    assert (workspace / "deployed-revision").read_text() == "v1\n"
    assert (tmp_path / "revisions" / "web.revision").read_text() == "v1\n"
    assert (tmp_path / "revisions" / "web.history").read_text().splitlines()[-1].endswith(" v1 rollback-from=v2")
    again = run_stub("-P", "SITE=web", "-P", "ROLLBACK=true", str(JENKINSFILE), cwd=workspace, env=agent_env(config))
    assert again.returncode != 0 and "no earlier good revision" in again.stdout  # nothing good before v1
    canary = run_stub("-P", "SITE=web", "-P", "ROLLBACK=true", "-P", "INSTANCE_IDS=i-0123456789abcdef0",
                      str(JENKINSFILE), cwd=workspace, env=agent_env(config))
    assert canary.returncode != 0 and "ROLLBACK rolls the whole site back" in canary.stdout


def test_scale_up_build_queued_through_jenkins_deploys_the_recorded_revision_to_the_new_instance(
        stub, aws, tmp_path, monkeypatch):
    config = site_config(tmp_path, aws)
    assert main(["revision", "set", "-c", str(config), "--site", "web", "--revision", "v1.4.2"]) == 0
    new = instance_ids(aws)[0]
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with JenkinsEmulator() as emulator:
        command = f"cd {shlex.quote(str(workspace))} && {shlex.quote(str(STUB))} {shlex.quote(str(JENKINSFILE))}"
        emulator.add_jobs_from_jjb(JOBS_DIR, commands={"deploy": command})
        for name, value in agent_env(config).items():
            monkeypatch.setenv(name, value)  # the emulator's builds inherit its environment, as from an agent
        server = jenkins.Jenkins(emulator.url, "admin", "token", timeout=10)
        server.build_job("deploy", {"SITE": "web", "INSTANCE_IDS": new, "REVISION": "",
                                    "LIFECYCLE_ACTIONS": f"web-asg:{new}:token-1"})
        emulator.wait_idle(timeout_s=BUILD_TIMEOUT_S)
        build, = emulator.builds("deploy")

    assert build.result == "SUCCESS", build.console
    assert stage_lines(build.console)["Test"] == "skipped (when)"
    assert not (workspace / "tests-ran").exists()
    assert (workspace / "deployed-revision").read_text() == "v1.4.2\n"
    assert cap_hosts(workspace / "deployed-cap.yml") == [f"web-{new}"]
    assert stage_lines(build.console)["Record revision"] == "skipped (when)"
    assert (tmp_path / "revisions" / "web.revision").read_text() == "v1.4.2\n"


@pytest.mark.parametrize("param, value, refusal", [
    ("SITE", "x; touch {pwned}", "no such site"),
    ("INSTANCE_IDS", "$(touch {pwned})", "is not an EC2 instance id"),
    ("INSTANCE_IDS", "i-0123456789abcdef0`touch {pwned}`", "is not an EC2 instance id"),
    # Issue 19 item 9: "every instance" to the helper, a canary to the Jenkinsfile (no hold, no record).
    ("INSTANCE_IDS", ",", "INSTANCE_IDS names no instance"),
    ("REVISION", "main;touch {pwned}", "aws-deploy-helper: revision 'main;touch"),
    ("REVISION", "release/../../{pwned}", "aws-deploy-helper: revision 'release/../.."),
    ("REVISION", "v" * 201, "aws-deploy-helper: revision 'vvv"),
])
def test_crafted_parameters_run_no_command_and_fail_the_build_cleanly(stub, aws, tmp_path, param, value, refusal):
    config = site_config(tmp_path, aws)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    pwned = tmp_path / "pwned"
    params = {"SITE": "web", "REVISION": "v1", param: value.format(pwned=pwned)}
    args = [arg for name, v in params.items() for arg in ("-P", f"{name}={v}")]

    result = run_stub(*args, str(JENKINSFILE), cwd=workspace, env=agent_env(config))

    assert result.returncode == 1
    assert refusal in result.stdout
    assert stage_lines(result.stdout)["Deploy"] == "skipped (earlier failure)"
    assert not pwned.exists()
    assert not (workspace / "deployed-revision").exists()
    assert not (tmp_path / "revisions" / "web.revision").exists()
    assert result.stdout.rstrip().endswith("RESULT: FAILURE")


@pytest.mark.parametrize("value", ["v1;touch {pwned}", "../../{pwned}", "v9"])
def test_a_rollback_to_a_crafted_or_unknown_revision_deploys_nothing(stub, aws, tmp_path, value):
    """ROLLBACK's REVISION goes to `revision previous --revision`, checked against the site's history."""
    config = site_config(tmp_path, aws)
    for rev in ("v1", "v2"):
        assert main(["revision", "set", "-c", str(config), "--site", "web", "--revision", rev]) == 0
    workspace = tmp_path / "ws"
    workspace.mkdir()
    pwned = tmp_path / "pwned"

    result = run_stub("-P", "SITE=web", "-P", "ROLLBACK=true", "-P", f"REVISION={value.format(pwned=pwned)}",
                      str(JENKINSFILE), cwd=workspace, env=agent_env(config))

    assert result.returncode == 1 and stage_lines(result.stdout)["Deploy"] == "skipped (earlier failure)"
    assert not pwned.exists() and not (workspace / "deployed-revision").exists()
    assert (tmp_path / "revisions" / "web.revision").read_text() == "v2\n"


# --- issue 9: what a build records, and paths that work from any directory -------------------------


def run_build(config: Path, workspace: Path, **params: str) -> subprocess.CompletedProcess:
    args = [arg for name, value in {"SITE": "web", **params}.items() for arg in ("-P", f"{name}={value}")]
    return run_stub(*args, str(JENKINSFILE), cwd=workspace, env=agent_env(config))


@pytest.mark.parametrize("params", [
    {"INSTANCE_IDS": "{one}", "REVISION": "canary-1"},
    {"INSTANCE_IDS": "{one}"},
], ids=["canary-with-revision", "canary-of-the-branch-head"])
def test_a_canary_build_deploys_its_revision_but_leaves_the_sites_record_alone(stub, aws, tmp_path, params):
    config = site_config(tmp_path, aws)
    assert main(["revision", "set", "-c", str(config), "--site", "web", "--revision", "v1"]) == 0
    one = instance_ids(aws)[0]
    workspace = tmp_path / "ws"
    head = git_checkout(workspace)

    result = run_build(config, workspace, **{name: value.format(one=one) for name, value in params.items()})

    assert result.returncode == 0, result.stdout
    assert (workspace / "deployed-revision").read_text() == f"{params.get('REVISION', head)}\n"
    assert cap_hosts(workspace / "deployed-cap.yml") == [f"web-{one}"]
    assert stage_lines(result.stdout)["Record revision"] == "skipped (when)"
    assert (tmp_path / "revisions" / "web.revision").read_text() == "v1\n"


def test_the_resolve_stage_checks_the_revision_with_the_helper(stub, aws, tmp_path):
    config = site_config(tmp_path, aws)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    result = run_build(config, workspace, REVISION="v1.0")
    assert result.returncode == 0, result.stdout
    resolve = next(line for line in result.stdout.splitlines() if " revision resolve " in line)
    assert "--revision=v1.0" in resolve  # the shell's `set -x` trace


def test_the_ssh_config_a_build_writes_works_from_any_directory(stub, aws, tmp_path):
    config = site_config(tmp_path, aws)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    ssh = shutil.which("ssh")
    if ssh is None:
        pytest.skip("ssh is not installed")
    result = run_build(config, workspace, REVISION="v1")
    assert result.returncode == 0, result.stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = workspace / "deploy-out"
    for instance in instance_ids(aws):
        resolved = subprocess.run([ssh, "-G", "-F", str(out / "ssh_config"), f"web-{instance}"], cwd=elsewhere,
                                  check=True, capture_output=True, text=True, timeout=STUB_TIMEOUT_S).stdout
        assert f"userknownhostsfile {out / 'known_hosts'}\n" in resolved
    inventory_call = next(line for line in result.stdout.splitlines() if " inventory " in line)
    assert f"--known-hosts {out}/known_hosts" in inventory_call or f"--known-hosts={out}/known_hosts" in inventory_call


# --- issue 11: a full deploy holds the site's groups still, and post releases them ------------------


# What the deploy step saw: the group's suspended processes, one line, sorted.
SUSPENDED_DURING_DEPLOY = (
    f"{shlex.quote(sys.executable)} -c 'import boto3; g = boto3.client(\"autoscaling\", region_name=\"us-east-1\")"
    ".describe_auto_scaling_groups(AutoScalingGroupNames=[\"web-asg\"])[\"AutoScalingGroups\"][0]; "
    "print(\",\".join(sorted(p[\"ProcessName\"] for p in g[\"SuspendedProcesses\"])))' > suspended-during-deploy"
)


@pytest.mark.parametrize("deploy_fails", [False, True], ids=["deploy-succeeds", "deploy-fails"])
def test_a_full_deploy_holds_the_sites_group_during_deploy_and_post_releases_it(stub, aws, tmp_path, deploy_fails):
    fleet.auto_scaling_site(aws, "us-east-1", "web-asg", 2)
    asg = fleet.client("autoscaling", aws, "us-east-1")
    asg.suspend_processes(AutoScalingGroupName="web-asg", ScalingProcesses=["ScheduledActions"])  # an operator's
    config = tmp_path / "deploy.yml"
    config.write_text(yaml.safe_dump({"path": {"revision_dir": str(tmp_path / "revisions")},
                                      "sites": {"web": {"asg": "web-asg", "region": "us-east-1"}}}))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    env = {**agent_env(config), "BUILD_URL": "https://ci.example.com/job/deploy/7/",
           "DEPLOY_COMMAND": SUSPENDED_DURING_DEPLOY + (" && exit 1" if deploy_fails else "")}

    result = run_stub("-P", "SITE=web", "-P", "REVISION=v2", str(JENKINSFILE), cwd=workspace, env=env)

    assert (workspace / "suspended-during-deploy").read_text() == \
        "AZRebalance,InstanceRefresh,ReplaceUnhealthy,ScheduledActions,Terminate\n"
    assert "web-asg: held by https://ci.example.com/job/deploy/7/ until " in result.stdout
    assert "web-asg: released; resumed Terminate,AZRebalance,InstanceRefresh,ReplaceUnhealthy; " \
        "still suspended, not ours: ScheduledActions" in result.stdout
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])["AutoScalingGroups"][0]
    assert [p["ProcessName"] for p in group["SuspendedProcesses"]] == ["ScheduledActions"]
    assert result.stdout.rstrip().endswith("RESULT: FAILURE" if deploy_fails else "RESULT: SUCCESS")
