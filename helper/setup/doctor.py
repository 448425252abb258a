"""`doctor`: check every setting a lifecycle deploy depends on, one line per finding with a fix.

Most lifecycle-hook trouble reported against other tools is a wrong setting: a hook that
notifies another queue, a heartbeat timeout shorter than a deploy, no dead-letter queue, a
Jenkins job without the parameters the consumer sends, a stale token. Each check here is a
pure function over what was observed (helper/setup/hooks_apply.py's Observed, the inventory's
results, what Jenkins answers), so each can be read, and tested, on its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Callable

from helper import PROG
from helper.aws.hook_timeouts import global_timeout_s, heartbeat_timeout_s
from helper.aws.results import Result
from helper.breaker.state import effective_margin_s
from helper.config.lifecycle import LifecycleConfig
from helper.consumer.action import LAUNCHING, TERMINATING
from helper.errors import ConfigError, HelperError, OutputError
from helper.files.safepath import read_text
from helper.inventory.sshcheck import weakened_host_key_checking
from helper.setup.doctor_jenkins import check_jenkins
from helper.setup.doctor_sites import check_rollouts, check_sites, site_results
from helper.setup.findings import FAIL, OK, WARN, Finding
from helper.setup.hooks import Desired, Observed, desired


def install_fix(config_path: str) -> str:
    return f"run: {PROG} hooks install -c {config_path}"


def days(seconds: float) -> str:
    return f"{seconds / 86400:g} d" if seconds >= 86400 else f"{seconds:g} s"


# --- the queue -----------------------------------------------------------------------------


def check_queue(want: Desired, seen: Observed, lc: LifecycleConfig, fix: str) -> list[Finding]:
    subject = f"queue {want.queue}"
    attrs = seen.queue
    if attrs is None:
        return [Finding(FAIL, subject, f"does not exist in {want.region}", fix)]
    if attrs.get("FifoQueue") == "true":
        return [Finding(FAIL, subject, "is a FIFO queue; hooks can only notify standard queues",
                        "point lifecycle.queue_url at a standard queue, then " + fix)]
    found = []
    visibility = int(attrs.get("VisibilityTimeout", 30))
    if visibility < lc.visibility_timeout_s:
        found.append(Finding(WARN, subject, f"visibility timeout {visibility} s is shorter than "
                             f"lifecycle.visibility_timeout_s {lc.visibility_timeout_s} s (the consumer sets its "
                             "own on each receive, other readers would not)", fix))
    retention = int(attrs.get("MessageRetentionPeriod", 345600))
    longest = max([global_timeout_s(heartbeat_timeout_s(h))
                   for hooks in seen.hooks.values() for h in hooks] or [0])
    if retention < longest:
        found.append(Finding(WARN, subject, f"keeps messages {days(retention)}, less than the hooks' global "
                             f"timeout {days(longest)}: a notification can expire before its action (the consumer's "
                             "reconciliation then has to find the instance)", fix))
    redrive = json.loads(attrs.get("RedrivePolicy") or "{}")
    if not redrive:
        found.append(Finding(FAIL, subject, "has no dead-letter queue: a message the consumer cannot handle is "
                             "redelivered forever and hides the ones behind it", fix))
        return found
    target = redrive.get("deadLetterTargetArn", "").rsplit(":", 1)[-1]
    exists = seen.dlq is not None if target == want.dlq else seen.redrive_target_exists
    if not exists:
        found.append(Finding(FAIL, subject, f"redrives to {target}, which does not exist", fix))
        return found
    found.append(Finding(OK, subject, f"visibility {visibility} s, retention {days(retention)}, dead-letter queue "
                         f"{target} after {redrive.get('maxReceiveCount')} receives"))
    return found


# --- the hooks -----------------------------------------------------------------------------


def _pick(hooks: tuple[dict, ...], transition: str, name: str) -> dict | None:
    mine = [h for h in hooks if h.get("LifecycleTransition") == transition]
    return next((h for h in mine if h["LifecycleHookName"] == name), mine[0] if mine else None)


def _check_hook(want: Desired, hook: dict, lc: LifecycleConfig, fix: str, subject: str) -> list[Finding]:
    target = hook.get("NotificationTargetARN")
    if target != want.queue_arn():
        # Not `hooks install`: it leaves a hook that notifies another target alone (issue 19 item 18).
        return [Finding(FAIL, subject, f"targets {target}, not the configured queue {want.queue}",
                        "set lifecycle.hook_name (or terminate_hook_name) to another name, or remove that hook yourself")]
    found = []
    timeout = heartbeat_timeout_s(hook)
    interval = lc.heartbeat_interval_for_s(timeout)
    if interval >= timeout:
        found.append(Finding(FAIL, subject, f"heartbeat timeout {timeout} s is not longer than the consumer's "
                             f"heartbeat interval {interval:g} s: actions time out between heartbeats",
                             f"lower lifecycle.heartbeat_interval_s or raise lifecycle.hook_heartbeat_timeout_s, "
                             f"then {fix}"))
    overall = int(hook.get("GlobalTimeout") or global_timeout_s(timeout))
    if overall <= lc.jenkins_deadline_s:
        found.append(Finding(FAIL, subject, f"heartbeat timeout {timeout} s gives a global timeout of {overall} s, "
                             f"shorter than lifecycle.jenkins_deadline_s {lc.jenkins_deadline_s:g} s: a deploy that "
                             "waits on Jenkins outlives its action",
                             f"set lifecycle.hook_heartbeat_timeout_s above {lc.jenkins_deadline_s / 100:g}, "
                             f"then {fix}"))
    if hook.get("LifecycleTransition") == LAUNCHING and hook.get("DefaultResult") == Result.CONTINUE:
        found.append(Finding(WARN, subject, "DefaultResult CONTINUE puts an instance whose deploy timed out into "
                             "service with whatever it booted with", fix))
    if not any(f.level == FAIL for f in found):
        found.append(Finding(OK, subject, f"targets queue {want.queue}; heartbeat timeout {timeout} s (consumer "
                             f"heartbeats every {interval:g} s), global {overall} s"))
    return found


def check_hooks(want: Desired, seen: Observed, lc: LifecycleConfig, fix: str) -> list[Finding]:
    found = []
    for route in lc.groups.values():
        if route.group not in seen.groups:
            found.append(Finding(FAIL, f"group {route.group}", f"not found in {want.region}",
                                 "fix lifecycle.groups or lifecycle.region"))
            continue
        needed = [(LAUNCHING, lc.hook_name)] + ([(TERMINATING, lc.terminate_hook_name)] if route.terminate_job else [])
        for transition, name in needed:
            hook = _pick(seen.hooks.get(route.group, ()), transition, name)
            kind = transition.split("_")[-1].lower()
            if hook is None:
                found.append(Finding(FAIL, f"group {route.group}", f"has no {kind} hook", fix))
                continue
            subject = f"hook {route.group}/{hook['LifecycleHookName']}"
            found += _check_hook(want, hook, lc, fix, subject)
    return found


# --- the run -------------------------------------------------------------------------------


def check_ssh_config(config) -> list[Finding]:
    """A managed block in the configured ssh config that options above it weaken (helper/inventory/sshcheck.py)."""
    paths = config.paths
    if not paths.ssh_config_file or paths.ssh_config_mode != "block":
        return []
    path = os.path.expanduser(paths.ssh_config_file)
    try:
        text = read_text(path)
    except OutputError as exc:
        return [Finding(WARN, "ssh-config", str(exc), "fix the file, or point path.ssh_config_file elsewhere")]
    warnings = weakened_host_key_checking(text or "", path)
    if not warnings:
        return [Finding(OK, "ssh-config", f"{path}: nothing above the managed block weakens host-key checking")]
    return [Finding(WARN, "ssh-config", warning, "move the managed block above that line") for warning in warnings]


# --- the tunnel programs (issue 13) ---------------------------------------------------------

# What a site's transport runs on the machine that runs ssh (helper/inventory/render/ssh.py's
# ProxyCommand): every tunnel needs the AWS CLI; Session Manager also needs its plugin, which
# the CLI starts to carry the session. Program -> (transports needing it, how to get it).
TUNNEL_PROGRAMS = {
    "aws": (("ssm", "eice"), "install AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/"
                             "getting-started-install.html) on the machine that runs ssh"),
    "session-manager-plugin": (("ssm",), "install the Session Manager plugin (https://docs.aws.amazon.com/"
                                         "systems-manager/latest/userguide/session-manager-working-with-install-plugin"
                                         ".html) on the machine that runs ssh"),
}


# `aws ec2-instance-connect open-tunnel` came with AWS CLI 2.12.0; v1 has no such command, and
# Session Manager's start-session works with either (the plugin carries the session).
OPEN_TUNNEL_SINCE = (2, 12, 0)
# `aws --version` reads no credentials and calls nothing: this only bounds a program that hangs.
VERSION_TIMEOUT_S = 15.0
_AWS_CLI_VERSION = re.compile(r"\baws-cli/(\d+)\.(\d+)\.(\d+)")


def aws_cli_version(path: str, env: Mapping[str, str] | None = None) -> tuple[int, int, int] | None:
    """What `path --version` says it is (`aws-cli/2.15.30 Python/...`: v2 on stdout, old v1s on
    stderr), or None when it does not run, fails or says something else. `env`: the program's
    whole environment (SetupSettings.program_env), so it sees none of our secrets."""
    try:
        done = subprocess.run([path, "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=VERSION_TIMEOUT_S, env=dict(env or {}))
    except (OSError, subprocess.SubprocessError):
        return None
    match = _AWS_CLI_VERSION.search(f"{done.stdout}\n{done.stderr}") if done.returncode == 0 else None
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def _open_tunnel_finding(path: str, users: list[str], eice: list[str], version: tuple[int, int, int] | None) -> Finding:
    """Whether the `aws` on PATH has open-tunnel, which the eice sites' ProxyCommand runs."""
    subject, since = "program aws", _dotted(OPEN_TUNNEL_SINCE)
    if version is None:
        return Finding(WARN, subject, f"{path} --version did not say which AWS CLI it is; site(s) {', '.join(eice)} "
                       f"need AWS CLI {since} or later (ec2-instance-connect open-tunnel)",
                       f"run {path} --version, and install AWS CLI v2 if it is not")
    if version < OPEN_TUNNEL_SINCE:
        return Finding(FAIL, subject, f"{path} is AWS CLI {_dotted(version)}; site(s) {', '.join(eice)} need {since} or "
                       "later, whose ec2-instance-connect open-tunnel carries their ssh", TUNNEL_PROGRAMS["aws"][1])
    return Finding(OK, subject, f"{path}, for site(s) {', '.join(users)}; AWS CLI {_dotted(version)}")


def check_tunnel_programs(sites, which: Callable[[str], str | None] = shutil.which,
                          env: Mapping[str, str] | None = None) -> list[Finding]:
    """FAIL for each program a tunnel site's ProxyCommand runs that is not on PATH: without it
    every ssh connection to those sites fails; and FAIL for an `aws` too old for an eice site's
    open-tunnel. Nothing is said (and nothing run) when no site uses a tunnel."""
    found = []
    eice = [s.name for s in sites if s.transport == "eice"]
    for program, (transports, fix) in TUNNEL_PROGRAMS.items():
        users = [f"{s.name} ({s.transport})" for s in sites if s.transport in transports]
        if not users:
            continue
        path = which(program)
        if path is None:
            found.append(Finding(FAIL, f"program {program}", f"is not on PATH; ssh reaches site(s) {', '.join(users)} "
                                 "through it", fix))
        elif program == "aws" and eice:
            found.append(_open_tunnel_finding(path, users, eice, aws_cli_version(path, env)))
        else:
            found.append(Finding(OK, f"program {program}", f"{path}, for site(s) {', '.join(users)}"))
    return found


# --- the breakers (issue 11) -------------------------------------------------------------------


def check_breakers(breakers, lc: LifecycleConfig, config_path: str,
                   hook_timeouts_s: tuple[int, ...] = ()) -> list[Finding]:
    """WARN for each open breaker (deploys of the site are stopped); and a margin that leaves no hold."""
    found = []
    for b in breakers:
        s = b.state
        if s.is_open:
            found.append(Finding(WARN, "breaker", f"site {b.site} is OPEN since {s.since} ({s.failures} failures of "
                                 f"{s.revision or '?'}), {len(s.held)} instance(s) held",
                                 f"deploy a good revision (a full deploy), or run: {PROG} breaker reset -c "
                                 f"{config_path} --site {b.site}"))
        elif s.reason.startswith("unreadable") or ": unreadable" in s.reason:
            found.append(Finding(WARN, "breaker", f"site {b.site}: {s.reason}",
                                 f"run: {PROG} breaker reset -c {config_path} --site {b.site}"))
    # The hooks AWS has (their shortest timeout), not the config's hook_heartbeat_timeout_s, which only
    # says what `hooks install` would create (issue 24); the config's when no hook could be read.
    overall = global_timeout_s(min(hook_timeouts_s, default=lc.hook_heartbeat_timeout_s))
    used_s = effective_margin_s(lc.breaker.margin_s, overall)
    if used_s < lc.breaker.margin_s:
        found.append(Finding(WARN, "breaker", f"lifecycle.breaker.margin_s {lc.breaker.margin_s:g} s is more than "
                             f"nine tenths of the hooks' global timeout ({overall:g} s): the consumer clamps it to "
                             f"{used_s:g} s", f"set lifecycle.breaker.margin_s to {used_s:g} or less"))
    if not found:
        found.append(Finding(OK, "breaker", f"{len(breakers)} site(s), none open"))
    return found


def check_holds(views: dict, site_of: dict[str, str], now: datetime, config_path: str) -> list[Finding]:
    """WARN for each fleet hold (scale-in and replacements stop until it ends) and each tag we cannot read."""
    from helper.deploys.fleet_hold import Unreadable, decode, is_expired

    found = []
    for group, view in sorted(views.items()):
        if view.tag is None:
            continue
        record = decode(view.tag, now)
        if isinstance(record, Unreadable):
            found.append(Finding(WARN, "fleet", f"group {group} has a hold tag we did not write ({record.why}); "
                                 "a full deploy overwrites it, the consumer never releases it",
                                 f"check who wrote it, then: {PROG} fleet release -c {config_path} --site {site_of[group]}"))
        else:
            state = "expired (the consumer's reconcile pass releases it)" if is_expired(record, now) else "held"
            found.append(Finding(WARN, "fleet", f"group {group} {state} by {record.holder} until {record.until}; "
                                 f"suspended {','.join(record.processes) or 'nothing'}",
                                 f"if that build is gone: {PROG} fleet release -c {config_path} --site {site_of[group]}"))
    return found or [Finding(OK, "fleet", f"{len(views)} group(s), none held")]


def diagnose(settings, api, jobs_factory: Callable | None = None,
             which: Callable[[str], str | None] = shutil.which) -> list[Finding]:
    """Everything, in the order a deploy depends on it; later checks skip what cannot work.

    `which` finds a program on PATH: the local programs are checked before any AWS call, so
    they are reported even when the credentials do not work."""
    config = settings.config
    lc = config.lifecycle
    found = [Finding(OK, "config", f"{config.path} loads: {len(config.sites)} site(s)"
                     + ("" if lc else ", no lifecycle: section (hooks, queue and Jenkins not checked)"))]
    found += check_tunnel_programs(config.sites, which, settings.program_env)
    try:
        identity = api.identity()
    except HelperError as exc:
        return found + [Finding(FAIL, "aws", f"credentials do not work: {exc}",
                                "configure credentials (AWS_PROFILE, an instance role, or aws configure)")]
    found.append(Finding(OK, "aws", f"credentials work: {identity.get('Arn')}"))
    results = site_results(settings)
    found += check_sites(results) + check_rollouts(settings, results) + check_ssh_config(config)
    if lc is None:
        return found
    fix = install_fix(config.path)
    hook_timeouts: tuple[int, ...] = ()
    try:
        want = desired(lc, identity["Account"])
        seen = api.observe(want, with_role=False)
    except (ConfigError, HelperError) as exc:
        found.append(Finding(FAIL, "lifecycle", str(exc), fix))
    else:
        found += check_queue(want, seen, lc, fix) + check_hooks(want, seen, lc, fix)
        hook_timeouts = tuple(heartbeat_timeout_s(h) for hooks in seen.hooks.values() for h in hooks)
    try:
        found += check_breakers(api.breakers(lc), lc, config.path, hook_timeouts)
    except HelperError as exc:
        found.append(Finding(WARN, "breaker", f"could not read the breaker tags: {exc}",
                             "allow autoscaling:DescribeTags (see iam-policy --principal setup)"))
    try:
        site_of = {g: s.name for s in config.sites for g in config.hold_groups(s.name, region=lc.region)}
        found += check_holds(api.holds(sorted(site_of)), site_of, datetime.now(timezone.utc), config.path)
    except HelperError as exc:
        found.append(Finding(WARN, "fleet", f"could not read the hold tags: {exc}",
                             "allow autoscaling:DescribeAutoScalingGroups (see iam-policy --principal setup)"))
    return found + check_jenkins(settings, jobs_factory)


def report(findings: list[Finding]) -> tuple[list[str], bool]:
    """The lines to print and whether anything would break a deploy."""
    counts = {level: sum(f.level == level for f in findings) for level in (OK, WARN, FAIL)}
    summary = f"doctor: {counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failure(s)"
    return [f.line() for f in findings] + [summary], counts[FAIL] > 0
