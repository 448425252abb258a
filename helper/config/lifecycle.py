"""The `lifecycle:` section: how the consumer reaches SQS, Jenkins and Auto Scaling.

Jenkins credentials are never read from this file: JENKINS_USER and JENKINS_API_TOKEN
come from the environment, or `jenkins.credentials_file` names a file holding
`user:token` (mode 0600, readable by the consumer only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any
from urllib.parse import urlsplit

from helper.aws.hook_timeouts import MAX_HEARTBEAT_TIMEOUT_S, MIN_HEARTBEAT_TIMEOUT_S
from helper.aws.names import HOOK_NAME_RE, ROLE_NAME_MAX_CHARS, ROLE_NAME_RE, queue_account, queue_name
from helper.aws.results import RESULTS, Result
from helper.config import fields
from helper.config.safety import AlertConfig, BreakerConfig, HoldConfig, parse_alerts, parse_breaker, parse_hold  # noqa: F401 (importers read them here too)
from helper.config.yamlfile import Located

# Jenkins build results (and our two pseudo-results) that a policy can map.
POLICY_KEYS = ("SUCCESS", "UNSTABLE", "FAILURE", "ABORTED", "NOT_BUILT", "CANCELLED", "UNREACHABLE")
DEFAULT_POLICY = {
    "SUCCESS": Result.CONTINUE,
    # An unstable deploy shipped something broken more often than not: replace the instance.
    "UNSTABLE": Result.ABANDON,
    "FAILURE": Result.ABANDON,
    "ABORTED": Result.ABANDON,
    "NOT_BUILT": Result.ABANDON,
    "CANCELLED": Result.ABANDON,
    "UNREACHABLE": Result.ABANDON,
}
WARM_POOL_POLICIES = ("continue", "deploy")

GROUP_KEYS = {"site", "job", "terminate_job"}
JENKINS_KEYS = {"url", "job", "credentials_file", "timeout_s"}
SECTION_KEYS = {
    "queue_url", "region", "jenkins", "groups", "batch_window_s", "batch_max_instances",
    "visibility_timeout_s", "heartbeat_fraction", "poll_interval_s", "jenkins_deadline_s",
    "result_on", "warm_pool", "reconcile_interval_s", "grace_period_s",
    "metrics_host", "metrics_port", "stall_after_s", "heartbeat_interval_s", "receive_wait_s",
    # Read by `hooks install` and `doctor` only (helper/setup/hooks.py).
    "hook_name", "terminate_hook_name", "hook_heartbeat_timeout_s", "hook_default_result", "hook_role_name",
    "breaker", "alerts",
    "hold",
}


# An SQS queue URL: http(s), a host, then ACCOUNT/NAME (a local endpoint may put a path before them).
# Queue names are 1-80 letters, digits, `-` and `_`.
QUEUE_URL_RE = re.compile(r"https?://[^/\s@]+(/[^/\s]+)*/[0-9]{12}/[A-Za-z0-9_-]{1,80}(\.fifo)?/?")


@dataclass(frozen=True)
class GroupRoute:
    group: str
    site: str
    job: str
    terminate_job: str | None = None


@dataclass(frozen=True)
class JenkinsConfig:
    url: str
    job: str
    credentials_file: str | None = None
    # python-jenkins waits forever without a timeout; a hung Jenkins must not hang us.
    timeout_s: float = 30.0


@dataclass(frozen=True)
class LifecycleConfig:
    queue_url: str
    region: str
    jenkins: JenkinsConfig
    groups: dict[str, GroupRoute]
    # Launches within this window share one build: a scale-out of 10 is one deploy.
    batch_window_s: float = 3.0
    batch_max_instances: int = 20
    # Long enough to survive a slow receive loop; we extend it while a build runs.
    visibility_timeout_s: int = 120
    # Heartbeat when this fraction of the hook's HeartbeatTimeout has passed: at 0.4
    # two heartbeats can fail (throttling) before the action times out.
    heartbeat_fraction: float = 0.4
    # A fixed interval instead, for hooks whose clock runs fast (the sandbox) or for
    # operators who want it explicit. None: heartbeat_fraction of the hook's timeout.
    heartbeat_interval_s: float | None = None
    # SQS long poll; shortened automatically when a batch or reconciliation is due. The
    # loop sees SIGTERM only between polls, so 5 s keeps shutdown prompt (well inside a
    # 30 s stop timeout) for one cheap ReceiveMessage per 5 s.
    receive_wait_s: int = 5
    poll_interval_s: float = 2.0
    # How long Jenkins may stay unreachable before we give up on a deploy and apply
    # result_on.UNREACHABLE. Must fit inside the hook's global timeout.
    jenkins_deadline_s: float = 1800.0
    result_on: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_POLICY))
    warm_pool: str = "continue"
    reconcile_interval_s: float = 300.0
    grace_period_s: float = 30.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    # /healthz fails when no receive has completed for this long.
    stall_after_s: float = 120.0
    # --- what `hooks install` creates (the consumer itself reads hook names from messages) ---
    # The name the sandbox and the README use; any name works, the consumer routes by group.
    hook_name: str = "deploy-on-launch"
    terminate_hook_name: str = "deploy-on-terminate"
    # Longer than a typical deploy (5-10 min), so one missed heartbeat during a throttled
    # scale-out does not time the action out; global timeout 100x = 25 h covers any deadline.
    hook_heartbeat_timeout_s: int = 900
    # ABANDON: an instance whose deploy timed out or crashed must not take traffic with the
    # old revision (CodeDeploy's known pain); Auto Scaling launches a replacement instead.
    hook_default_result: Result = Result.ABANDON
    # None: `<queue name>-hook`, so staging and production queues in one account get a role each.
    hook_role_name: str | None = None
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    hold: HoldConfig = field(default_factory=HoldConfig)

    @property
    def queue_name(self) -> str:
        return queue_name(self.queue_url)

    # "A site's groups": the one rule (issue 20), for the breaker, the fleet hold, the settings
    # and `breaker status`.
    @property
    def routed_sites(self) -> tuple[str, ...]:
        """Every site some group's launches are routed to, sorted."""
        return tuple(sorted({route.site for route in self.groups.values()}))

    def groups_of(self, site: str | None = None) -> tuple[str, ...]:
        """The groups whose launches are deployed to `site` (to any site when None), sorted."""
        return tuple(sorted(g for g, route in self.groups.items() if site in (None, route.site)))

    @property
    def queue_account(self) -> str | None:
        """The account the queue URL names; None for a URL without one (a local endpoint)."""
        return queue_account(self.queue_url)

    @property
    def hook_role(self) -> str:
        """The role the hooks use to notify the queue: hook_role_name, else `<queue name>-hook`."""
        return self.hook_role_name or f"{self.queue_name}-hook"[:ROLE_NAME_MAX_CHARS]

    def heartbeat_interval_for_s(self, hook_timeout_s: int) -> float:
        """How often the consumer heartbeats an action of a hook with this HeartbeatTimeout:
        heartbeat_interval_s when set, else heartbeat_fraction of the timeout. The deployment
        paces its heartbeats by it and `doctor` checks it against the hooks."""
        return self.heartbeat_interval_s or hook_timeout_s * self.heartbeat_fraction


def jenkins_url_problem(url: str) -> str | None:
    """Why `lifecycle.jenkins.url` cannot serve, or None.

    A URL without a scheme made requests fail at the first call, deep in `consume` (issue 24);
    `user:token@` in it was published in breaker tags and alerts (issue 19 item 5): the token
    belongs in JENKINS_API_TOKEN or jenkins.credentials_file, never in this file.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError:
        return "is not a URL (a bad host or port)"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https:// (for example https://jenkins.example.com/)"
    if parts.username is not None or parts.password is not None:
        return ("must not hold user:token@ (it would be published in alerts and tags): set JENKINS_USER and "
                "JENKINS_API_TOKEN, or jenkins.credentials_file")
    if not parts.hostname:
        return "has no host"
    return None


def check_reconcile_interval(doc: Located, section: dict, reconcile_s: float, visibility_s: int) -> None:
    """Refuse a reconcile pass that can run before a killed consumer's notification comes back.

    A message is kept invisible for at most visibility_timeout_s past its last renewal. After a
    SIGKILL the restarted consumer sweeps at once and again reconcile_interval_s later; an
    instance seen waiting on both sweeps is deployed by instance id. With a shorter interval the
    second sweep could come while the notification is still invisible, and when the killed
    consumer's build had finished by then, nothing stands in for it: a second build (issue 19
    item 20). No shorter interval is needed: a lost notification is rare, not urgent.
    """
    if reconcile_s >= visibility_s:
        return
    key = "reconcile_interval_s" if "reconcile_interval_s" in section else "visibility_timeout_s"
    raise fields.fail(doc, ("lifecycle", key),
                      f"reconcile_interval_s ({reconcile_s:g} s) must be at least visibility_timeout_s "
                      f"({visibility_s} s): a shorter sweep can redeploy, after a restart, an instance whose "
                      "notification is still invisible")


# --- the section's plain keys: one table, defaults from LifecycleConfig itself (issue 20) ---


@dataclass(frozen=True)
class Number:
    low: float
    high: float
    whole: bool = False  # 2.5 refused, not cut to 2 (issue 24)

    def parse(self, doc: Located, value: Any, keys: tuple) -> float | int:
        check = fields.whole if self.whole else fields.number
        return check(doc, value, keys, self.low, self.high)


@dataclass(frozen=True)
class Matching:
    pattern: re.Pattern | None  # None: any non-empty string
    what: str = ""

    def parse(self, doc: Located, value: Any, keys: tuple) -> str:
        text = fields.string(doc, value, keys)
        if text is None:
            raise fields.fail(doc, keys, "must be a non-empty string")
        if self.pattern is not None and not self.pattern.fullmatch(text):
            raise fields.fail(doc, keys, f"must be {self.what}")
        return text


@dataclass(frozen=True)
class OneOf:
    choices: tuple[str, ...]
    convert: Any = str

    def parse(self, doc: Located, value: Any, keys: tuple) -> Any:
        if value is None:
            raise fields.fail(doc, keys, f"must be one of {', '.join(self.choices)}")
        return self.convert(fields.choice(doc, value, keys, self.choices, ""))


HOOK_NAME = Matching(HOOK_NAME_RE, "a hook name ([A-Za-z0-9_/-], at most 255)")
SCALARS = {
    "batch_window_s": Number(0, 300),
    "batch_max_instances": Number(1, 1000, whole=True),
    "visibility_timeout_s": Number(1, 43200, whole=True),
    "heartbeat_fraction": Number(0.05, 0.9),
    "heartbeat_interval_s": Number(0.01, 7200),
    "receive_wait_s": Number(0, 20, whole=True),  # SQS's own limit on a long poll
    "poll_interval_s": Number(0.01, 300),
    "jenkins_deadline_s": Number(1, 172800),
    "warm_pool": OneOf(WARM_POOL_POLICIES),
    "reconcile_interval_s": Number(0.1, 86400),
    "grace_period_s": Number(0, 3600),
    "metrics_host": Matching(None),
    "metrics_port": Number(0, 65535, whole=True),
    "stall_after_s": Number(1, 86400),
    "hook_name": HOOK_NAME,
    "terminate_hook_name": HOOK_NAME,
    "hook_heartbeat_timeout_s": Number(MIN_HEARTBEAT_TIMEOUT_S, MAX_HEARTBEAT_TIMEOUT_S, whole=True),
    "hook_default_result": OneOf(RESULTS, Result),
    "hook_role_name": Matching(ROLE_NAME_RE, "an IAM role name ([A-Za-z0-9+=,.@_-], at most 64)"),
}


def parse_scalars(doc: Located, section: dict, keys: tuple) -> dict[str, Any]:
    """Each key of SCALARS as written, checked; LifecycleConfig's own default when absent (or
    written empty, for a key whose default is None: `metrics_port:` means no metrics server)."""
    defaults = {f.name: f.default for f in dataclass_fields(LifecycleConfig)}
    unset = lambda name: name not in section or (section[name] is None and defaults[name] is None)  # noqa: E731
    return {name: defaults[name] if unset(name) else rule.parse(doc, section[name], keys + (name,))
            for name, rule in SCALARS.items()}


def parse_lifecycle(doc: Located, raw, site_names: set[str], default_region: str) -> LifecycleConfig:
    # Imported here: config imports this module.
    keys = ("lifecycle",)
    section = fields.mapping(doc, raw, keys, SECTION_KEYS)
    queue_url = fields.string(doc, section.get("queue_url"), keys + ("queue_url",))
    if queue_url is None:
        raise fields.fail(doc, keys, "queue_url is required")
    if not QUEUE_URL_RE.fullmatch(queue_url):
        raise fields.fail(doc, keys + ("queue_url",), "must be an SQS queue URL "
                          "(https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)")
    jraw = fields.mapping(doc, section.get("jenkins"), keys + ("jenkins",), JENKINS_KEYS)
    jurl = fields.string(doc, jraw.get("url"), keys + ("jenkins", "url"))
    jjob = fields.string(doc, jraw.get("job"), keys + ("jenkins", "job"))
    if jurl is None or jjob is None:
        raise fields.fail(doc, keys + ("jenkins",), "jenkins.url and jenkins.job are required")
    problem = jenkins_url_problem(jurl)
    if problem is not None:
        raise fields.fail(doc, keys + ("jenkins", "url"), problem)
    jenkins = JenkinsConfig(
        url=jurl, job=jjob,
        credentials_file=fields.string(doc, jraw.get("credentials_file"), keys + ("jenkins", "credentials_file")),
        timeout_s=fields.number(doc, jraw.get("timeout_s", 30.0), keys + ("jenkins", "timeout_s"), 1, 600),
    )
    groups: dict[str, GroupRoute] = {}
    for group, route in fields.mapping(doc, section.get("groups"), keys + ("groups",)).items():
        where = keys + ("groups", group)
        route = fields.as_written(doc, route, where)
        route = {"site": route} if isinstance(route, str) else fields.mapping(doc, route, where, GROUP_KEYS)
        site = fields.as_written(doc, route.get("site"), where + ("site",))
        if site not in site_names:
            raise fields.fail(doc, where, f"site {site!r} is not one of the configured sites")
        groups[str(group)] = GroupRoute(
            group=str(group), site=site,
            job=fields.string(doc, route.get("job"), where + ("job",)) or jjob,
            terminate_job=fields.string(doc, route.get("terminate_job"), where + ("terminate_job",)),
        )
    if not groups:
        raise fields.fail(doc, keys + ("groups",), "map at least one Auto Scaling group to a site")
    policy = dict(DEFAULT_POLICY)
    for name, result in fields.mapping(doc, section.get("result_on"), keys + ("result_on",), set(POLICY_KEYS)).items():
        policy[name] = Result(fields.choice(doc, result, keys + ("result_on", name), RESULTS, "ABANDON"))
    if policy["SUCCESS"] is not Result.CONTINUE:
        raise fields.fail(doc, keys + ("result_on", "SUCCESS"), "a successful deploy must CONTINUE")
    scalars = parse_scalars(doc, section, keys)
    check_reconcile_interval(doc, section, scalars["reconcile_interval_s"], scalars["visibility_timeout_s"])
    return LifecycleConfig(
        queue_url=queue_url,
        region=fields.string(doc, section.get("region"), keys + ("region",)) or default_region,
        jenkins=jenkins,
        groups=groups,
        result_on=policy,
        **scalars,
        breaker=parse_breaker(doc, section.get("breaker")),
        alerts=parse_alerts(doc, section.get("alerts")),
        hold=parse_hold(doc, section.get("hold")),
    )

