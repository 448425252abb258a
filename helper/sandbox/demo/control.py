"""`aws-deploy-helper sandbox up|down|status|serve|scale`.

`serve` runs both emulators (moto and Jenkins) on 127.0.0.1 in the foreground; `up` starts
`serve` as a detached process and waits until it has written its state file, so the endpoints
it prints are ready. The state file (mode 0600) holds the Jenkins API token, which is made up
at start and never logged: only `up` and `status` print it, as export lines for the user's shell.
`up` and `serve` need the `sandbox` extra (moto); `status`, `scale` and `down` do not.
With `--hosts` (root only) every demo instance is also a real SSH host: real_hosts.py.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from helper.errors import HelperError
from helper.files.write import write_atomic
from helper.sandbox.aws import fleet
from helper.sandbox.aws.server import SANDBOX_ENV, MotoServer
from helper.sandbox.demo import jobs, real_hosts, records
from helper.sandbox.jenkins.emulator import JenkinsEmulator

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
CREDENTIALS_FILE = "jenkins-credentials"
LOG_FILE = "sandbox.log"
SECRET_MODE = 0o600  # state.json and the credentials file hold the API token
JENKINS_USER = "sandbox"
# 128 bits: as much as Jenkins puts in its own API tokens.
TOKEN_BYTES = 16
# Seeding the demo fleet takes about a second on a quiet machine; allow for a slow CI.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.05
# What the `sandbox` extra of setup.cfg installs for `up` and `serve`: moto, and Flask for its server.
SANDBOX_EXTRA_MODULES = ("moto", "flask")
INSTALL_SANDBOX = "pip install 'aws-deploy-helper[sandbox]'"
# The sandbox clock runs in real time unless --time-scale says otherwise.
REAL_TIME = 1.0


def require_sandbox_extra() -> None:
    """A one-line HelperError naming what to install, instead of an ImportError from deep inside moto."""
    for module in SANDBOX_EXTRA_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            raise HelperError(f"the sandbox needs {module}, which is not installed: {INSTALL_SANDBOX}") from None


def _state_path(state_dir: str) -> Path:
    return Path(state_dir).resolve() / STATE_FILE


def read_state(state_dir: str) -> dict | None:
    """state.json, checked (helper/sandbox/demo/records.py): a bad one is one line, never a traceback or a hang."""
    return records.read_record(_state_path(state_dir), {"pid": int})


def running(state: dict | None, state_dir: str) -> bool:
    """Does the process state.json names still serve this state directory (not a reused pid)?"""
    return state is not None and records.is_our_serve(state["pid"], state.get("pid_start"),
                                                      Path(state_dir).resolve())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def environment(state: dict) -> dict[str, str]:
    """What a shell needs to point boto3, the helper and python-jenkins at the sandbox."""
    return {**SANDBOX_ENV, "AWS_ENDPOINT_URL": state["aws_endpoint"], "JENKINS_URL": state["jenkins_url"],
            "JENKINS_USER": state["jenkins_user"], "JENKINS_API_TOKEN": state["jenkins_api_token"]}


def _print_state(state: dict) -> None:
    print(f"local AWS (moto):  {state['aws_endpoint']}")
    print(f"local Jenkins:     {state['jenkins_url']} (job {state['jenkins_job']})")
    print(f"lifecycle queue:   {state['queue_url']}")
    print(f"dead-letter queue: {state['dlq_url']}")
    print(f"demo config:       {state['config']}")
    print(f"sandbox clock:     x{state['time_scale']:g}")
    if state.get("hosts"):
        hosts = state["hosts"]
        print(f"ssh hosts:         one per instance in {hosts['cidr']} (user {hosts['user']},"
              f" key {hosts['identity_file']})")
        balancers = hosts.get("load_balancers") or {}
        if "unavailable" in balancers:
            print(f"load balancers:    none ({balancers['unavailable']})")
        for name, url in sorted(balancers.items()):
            if name != "unavailable":
                print(f"load balancer:     {name} {url} (HAProxy)")
    print("# to point boto3, the helper and python-jenkins at it, run these in your shell:")
    for name, value in environment(state).items():
        print(f"export {name}={shlex.quote(value)}")


def _start_jenkins(port: int, token: str) -> JenkinsEmulator:
    emulator = JenkinsEmulator(port=port, users={}, api_tokens={JENKINS_USER: token},
                               quiet_period_s=jobs.QUIET_PERIOD_S)
    emulator.start()
    return emulator


def _seed(directory: Path, aws_url: str, jenkins: JenkinsEmulator, token: str, time_scale: float,
          ssh: fleet.DemoSsh | None = None) -> tuple[fleet.DemoFleet, dict]:
    """The demo fleet, its config and the deploy job; returns the fleet and the state to write.
    With `ssh` (real hosts), every instance is in the default-VPC range and the config reaches them."""
    demo = fleet.seed_demo(aws_url, in_vpc=ssh is not None)
    credentials = directory / CREDENTIALS_FILE
    write_atomic(credentials, f"{JENKINS_USER}:{token}\n", mode=SECRET_MODE)
    where = fleet.DemoJenkins(jenkins.url, jobs.DEPLOY_JOB, str(credentials))
    config = fleet.write_demo_config(demo, directory, where, ssh)
    jobs.record_initial_revisions(config)
    source = jobs.add_deploy_job(jenkins, jobs.deploy_command(config, directory, aws_url))
    log.info("event=sandbox_ready aws=%s jenkins=%s job_from=%s", aws_url, jenkins.url, source)
    return demo, {
        "pid": os.getpid(), "pid_start": records.process_start(os.getpid()), "aws_endpoint": aws_url, "region": demo.region,
        "jenkins_url": jenkins.url, "jenkins_user": JENKINS_USER, "jenkins_api_token": token,
        "jenkins_job": jobs.DEPLOY_JOB, "queue_url": demo.queue_url, "queue_arn": demo.queue_arn,
        "dlq_url": demo.dlq_url, "config": str(config), "time_scale": time_scale,
    }


def serve(state_dir: str, port: int = 0, ready: threading.Event | None = None,
          stop: threading.Event | None = None, jenkins_port: int = 0, time_scale: float = REAL_TIME,
          hosts: bool = False) -> None:
    """Run until `stop` (SIGTERM, SIGINT); whatever way it ends, what it made is removed in reverse."""
    directory = Path(state_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    with contextlib.ExitStack() as running:
        network, ssh = real_hosts.start(directory, running) if hosts else (None, None)
        moto = MotoServer(port=port, time_scale=time_scale)
        aws_url = moto.start()
        running.callback(moto.stop)
        token = secrets.token_hex(TOKEN_BYTES)
        jenkins = _start_jenkins(jenkins_port, token)
        running.callback(jenkins.stop)
        running.callback((directory / CREDENTIALS_FILE).unlink, missing_ok=True)  # its token dies with us
        demo, state = _seed(directory, aws_url, jenkins, token, time_scale, ssh)
        if network is not None:
            state["hosts"] = real_hosts.watch(directory, network, aws_url, demo, running)
        running.callback((directory / STATE_FILE).unlink, missing_ok=True)  # first out: `status` stops at once
        write_atomic(directory / STATE_FILE, json.dumps(state, indent=2) + "\n", mode=SECRET_MODE)
        if ready is not None:
            ready.set()
        stop.wait()


def _serve_argv(directory: Path, port: int, jenkins_port: int, time_scale: float | None,
                hosts: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "helper", "sandbox", "serve", "--state-dir", str(directory), "--port", str(port)]
    # Only passed when asked for, so `up` works with a parser that lacks the flags.
    argv += ["--jenkins-port", str(jenkins_port)] if jenkins_port else []
    argv += ["--hosts"] if hosts else []
    return argv + (["--time-scale", repr(time_scale)] if time_scale is not None else [])


def up(state_dir: str, port: int = 0, jenkins_port: int = 0, time_scale: float | None = None,
       hosts: bool = False) -> dict:
    existing = read_state(state_dir)
    if running(existing, state_dir):
        return existing
    directory = Path(state_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    _state_path(state_dir).unlink(missing_ok=True)
    _stop_recorded_hosts(directory)  # a crashed sandbox's hosts would hold the addresses
    with open(directory / LOG_FILE, "ab") as sandbox_log:
        process = subprocess.Popen(
            _serve_argv(directory, port, jenkins_port, time_scale, hosts),
            stdin=subprocess.DEVNULL, stdout=sandbox_log, stderr=sandbox_log, start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = read_state(state_dir)
        if state is not None:
            return state
        if process.poll() is not None:
            raise HelperError(f"sandbox exited with status {process.returncode}; see {directory / LOG_FILE}")
        time.sleep(POLL_INTERVAL_S)
    process.kill()
    raise HelperError(f"sandbox did not start within {START_TIMEOUT_S:.0f} s; see {directory / LOG_FILE}")


def _terminate(pid: int) -> None:
    """SIGTERM, so serve removes what it made; SIGKILL if it does not end in time."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _stop_recorded_hosts(directory: Path) -> list[str]:
    """End a serve process that recorded real hosts and remove what it left (after a crash or a
    SIGKILL, its namespaces, bridge and sshd); what was left, one entry each."""
    record = real_hosts.read_record(directory)
    if record is None:
        return []
    if records.is_our_serve(record["pid"], record.get("pid_start"), directory):
        _terminate(record["pid"])
    return real_hosts.sweep(directory)


def down(state_dir: str) -> tuple[bool, list[str]]:
    """Stop the sandbox; (whether it was running, what a crashed one left and was removed now)."""
    state = read_state(state_dir)
    serving = running(state, state_dir)
    if serving:
        _terminate(state["pid"])
    _state_path(state_dir).unlink(missing_ok=True)
    return serving, _stop_recorded_hosts(Path(state_dir).resolve())


def scale(state: dict, state_dir: str, group: str, desired: int | None) -> list[str]:
    """Set a demo group's desired capacity (if given); describe each instance, one a line."""
    asg = fleet.client("autoscaling", state["aws_endpoint"], state.get("region", "us-east-1"))
    if desired is not None:
        asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=desired)
    found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
    if not found:
        raise HelperError(f"no Auto Scaling group {group!r} in the sandbox")
    hosts = Path(state_dir).resolve() / "hosts"
    serving = _behind_load_balancers(state, found[0])
    lines = []
    for inst in sorted(found[0]["Instances"], key=lambda i: i["InstanceId"]):
        deployed = sorted(hosts.glob(f"*-{inst['InstanceId']}.revision"))
        revision = deployed[0].read_text().strip() if deployed else "none yet"
        line = f"{group} {inst['InstanceId']} {inst['LifecycleState']} revision={revision}"
        if serving is not None:
            line += f" load_balancer={'in' if inst['InstanceId'] in serving else 'out'}"
        lines.append(line)
    return lines


def _behind_load_balancers(state: dict, group: dict) -> set[str] | None:
    """Instances taking traffic from the group's classic ELBs or healthy in its target groups.

    None when the group has no load balancer. This is what the gate is for: a new instance
    shows `out` until its lifecycle action completes with CONTINUE.
    """
    names, target_groups = group.get("LoadBalancerNames", []), group.get("TargetGroupARNs", [])
    if not names and not target_groups:
        return None
    region = state.get("region", "us-east-1")
    serving: set[str] = set()
    if names:
        elb = fleet.client("elb", state["aws_endpoint"], region)
        for lb in elb.describe_load_balancers(LoadBalancerNames=names)["LoadBalancerDescriptions"]:
            serving.update(i["InstanceId"] for i in lb["Instances"])
    elbv2 = fleet.client("elbv2", state["aws_endpoint"], region)
    for arn in target_groups:
        for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]:
            if d["TargetHealth"]["State"] == "healthy":
                serving.add(d["Target"]["Id"])
    return serving


def run(action: str, args) -> int:
    # --jenkins-port and --time-scale are optional: older parsers do not define them.
    jenkins_port = getattr(args, "jenkins_port", 0) or 0
    time_scale = getattr(args, "time_scale", None)
    hosts = getattr(args, "hosts", False)
    if action in ("up", "serve"):
        require_sandbox_extra()
        refused = real_hosts.refusal() if hosts else None
        if refused:
            raise HelperError(refused)
    if action == "serve":
        serve(args.state_dir, args.port, jenkins_port=jenkins_port,
              time_scale=REAL_TIME if time_scale is None else time_scale, hosts=hosts)
        return 0
    if action == "up":
        _print_state(up(args.state_dir, args.port, jenkins_port, time_scale, hosts))
        return 0
    if action == "down":
        stopped, leftovers = down(args.state_dir)
        for what in leftovers:
            print(f"removed what a crashed sandbox left: {what}")
        print("sandbox stopped" if stopped else "sandbox was not running")
        return 0
    state = read_state(args.state_dir)
    if not running(state, args.state_dir):
        print("sandbox is not running")
        return 1
    if action == "scale":
        print("\n".join(scale(state, args.state_dir, args.group, args.desired)))
        return 0
    _print_state(state)
    return 0
