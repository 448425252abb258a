"""The Jenkins seam: queue a build, find the build that serves an action, follow it.

Jenkins is the shared record of which action has a build: every scale-up build carries
its actions in the LIFECYCLE_ACTIONS parameter, so any consumer replica (or the same
one after a crash) can find it instead of starting a second build.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter

import jenkins
from helper.consumer.action import PASSENGER, LifecycleAction, parse_ref
from helper.errors import HelperError
from helper.urls import redact_userinfo

log = logging.getLogger(__name__)

ACTIONS_PARAM = "LIFECYCLE_ACTIONS"
# Every parameter a scale-up build is given (helper/consumer/deployment.py): the deploy job must define
# each one, which `doctor` checks.
BUILD_PARAMETERS = ("SITE", "INSTANCE_IDS", "REVISION", ACTIONS_PARAM, "DRY_RUN", "SKIP_TESTS")
# How many recent builds to search for one that already serves an action. A consumer
# that was down longer than it takes the job to run this many builds finds none and
# queues a new build, which is still correct, only slower.
SEARCH_BUILDS = 100
# The build parameters, and what each must say, that make a build the consumer's own deploy
# (helper/consumer/deployment.py parameters()): anything else that names an action deploys something else.
OWN_BUILD = (("DRY_RUN", "false"), ("REVISION", ""))
CAUSE_ACTION = "hudson.model.CauseAction"


class JenkinsUnavailable(HelperError):
    """Jenkins did not answer usefully (down, 5xx, timeout): retry until the deadline."""


class JenkinsRejected(JenkinsUnavailable):
    """401/403: the user or token is wrong, or lacks a permission. The consumer retries it as an
    outage (a rotated token can be put back); `doctor` reports it as its own finding."""

    def __init__(self, what: str, status: int) -> None:
        super().__init__(f"{what}: HTTP {status} (credentials rejected)")
        self.status = status


# python-jenkins tells 401/403 apart from a 500 only in its message: "... failed [401]: ...".
_REJECTED_STATUSES = (401, 403)


def _unavailable(what: str, exc: Exception) -> JenkinsUnavailable:
    for status in _REJECTED_STATUSES:
        if isinstance(exc, jenkins.JenkinsException) and f"[{status}]" in str(exc):
            return JenkinsRejected(what, status)
    return JenkinsUnavailable(f"{what}: {exc}")


class JobMissing(JenkinsUnavailable):
    """Jenkins has no such job (404). Retried like an outage: someone may be creating or
    renaming it, and a deploy that waits keeps its action, where one that fails loses it."""


@dataclass(frozen=True)
class Found:
    """A queue item or build whose LIFECYCLE_ACTIONS names some of our actions."""

    queue_id: int | None
    build_number: int | None
    refs: tuple[str, ...]
    result: str | None = None
    building: bool = False
    params: dict = field(default_factory=dict, compare=False, hash=False)
    user: str | None = None  # the UserIdCause's userId: who queued it
    started_ms: int | None = None  # a build's start (Jenkins's timestamp, epoch ms)

    @property
    def instances(self) -> set[str]:
        """The instances it deploys (INSTANCE_IDS)."""
        return set(filter(None, str(self.params.get("INSTANCE_IDS") or "").split(",")))

    @property
    def in_progress(self) -> bool:
        return self.build_number is None or self.building


@dataclass(frozen=True)
class Progress:
    """Where a queued build is now."""

    build_number: int | None = None
    result: str | None = None  # set once finished; "CANCELLED" for a cancelled item
    gone: bool = False  # the queue item expired before we saw it start


def refs_of(parameters: list[dict]) -> tuple[str, ...]:
    for p in parameters or ():
        if p.get("name") == ACTIONS_PARAM and isinstance(p.get("value"), str):
            return tuple(p["value"].split())
    return ()


def covers(ref: str, action: LifecycleAction) -> bool:
    """Does a LIFECYCLE_ACTIONS reference name exactly this action?

    By its own token; an action without one (found by reconciliation) only by `-`, the
    mark of a build queued for a tokenless action. `-` never stands in for a real token:
    a build queued by hand with it would otherwise complete any action of the instance.
    """
    parsed = parse_ref(ref)
    if parsed is None:
        return False
    group, instance, token = parsed
    # Encoded now; as written before encoding (today's form) when it differs.
    if action.group not in (unquote(group), group) or instance != action.instance_id:
        return False
    return token == (action.token or "-") and token != PASSENGER  # a message claiming token "+" is forged


def _flat(parameters: list[dict]) -> dict:
    return {p["name"]: p.get("value") for p in parameters or () if isinstance(p, dict) and "name" in p}


def _text(value) -> str:
    # A boolean parameter's value is JSON true/false; a string parameter's is text.
    return str(value).lower() if isinstance(value, bool) else str(value)


def not_ours(found: Found, site: str, user: str) -> str | None:
    """Why a build that names one of our actions is not the consumer's own deploy, or None.

    Ours: queued by the consumer's own Jenkins user, for the route's site, not a dry run,
    with the revision left to the build. The job is already the route's (find() asks it).
    """
    for name, wanted in (("SITE", site),) + OWN_BUILD:
        value = _text(found.params.get(name, ""))
        if value != wanted:
            return f"{name} is {value!r}"
    if found.user != user:
        return f"queued by {found.user!r}"
    return None


def names_instance(ref: str, action: LifecycleAction) -> bool:
    """Does a reference name this action's group and instance, whatever its token?"""
    parsed = parse_ref(ref)
    return parsed is not None and action.group in (unquote(parsed[0]), parsed[0]) and parsed[1] == action.instance_id


def serves(found: Found, action: LifecycleAction, sent_ms: int | None = None) -> bool:
    """The build names this very action and deploys to its instance. Also, while queued or running, a
    build naming the instance for a reconciled action (no token: a SIGKILLed consumer's, issue 19 item
    20); and for an action with a token, one that took it along (`+`, passengers.py) while queued or
    running, or finished if it started after SQS got the notification (`sent_ms`): it deployed in this
    very wait. No other finished build stands in: it may be an earlier action's (a warm pool's first
    launch), and a second deploy is harmless where a skipped one is not."""
    if action.instance_id not in found.instances:
        return False
    if any(covers(r, action) for r in found.refs):
        return True
    if action.token is None:
        return found.in_progress and any(names_instance(r, action) for r in found.refs)
    after = sent_ms is not None and found.started_ms is not None and found.started_ms >= sent_ms
    return (found.in_progress or after) and any(names_instance(r, action) and r.endswith(":" + PASSENGER)
                                                for r in found.refs)


def _actions_part(actions, wanted: str) -> list:
    for entry in actions or ():
        if isinstance(entry, dict) and wanted in entry:
            return entry[wanted] or []
    return []


def _user(actions) -> str | None:
    for entry in actions or ():
        if isinstance(entry, dict) and entry.get("_class", CAUSE_ACTION) == CAUSE_ACTION:
            for cause in entry.get("causes") or ():
                if isinstance(cause, dict) and cause.get("userId"):
                    return cause["userId"]
    return None


def job_of_url(url: str) -> str | None:
    """A job's full name from its URL, whatever the host and any proxy prefix before it.

    Jenkins writes its own root URL into task URLs; the consumer may know it by another
    spelling (localhost for 127.0.0.1, a proxy's path). Only the trailing job/<name>
    pairs name the job.
    """
    parts = [unquote(p) for p in urlsplit(url).path.split("/") if p]
    names = []
    while len(parts) >= 2 and parts[-2] == "job":
        names.insert(0, parts[-1])
        parts = parts[:-2]
    return "/".join(names) or None


class JenkinsJobs:
    def __init__(self, server: jenkins.Jenkins) -> None:
        self._server = server
        self._base = server.server.rstrip("/") + "/"
        self._user_id: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, url: str, user: str, token: str, timeout_s: float, connections: int = 10) -> "JenkinsJobs":
        """`connections`: how many HTTP connections to keep for threads calling at once.

        python-jenkins mounts requests' default adapter, which keeps 10; with more deployment
        threads than that a burst discarded (and reopened) connections and logged "Connection
        pool is full" (bench/lifecycle.py --burst). Its retry policy is kept as it was.
        """
        server = jenkins.Jenkins(url, username=user, password=token, timeout=timeout_s)
        session = server._session  # python-jenkins offers no pool size of its own
        retries = session.get_adapter(url).max_retries  # of the adapter that serves this URL today
        # Mounted for the server's own URL: the longest prefix, so it serves every call to it.
        session.mount(url.rstrip("/") + "/", HTTPAdapter(max_retries=retries, pool_maxsize=connections))
        return cls(server)

    def _get(self, path: str, missing_ok: bool = True) -> dict:
        """GET a JSON answer; a 404 is NotFoundException when `missing_ok` (a job may be
        missing), else an outage (no Jenkins answers 404 for its own me/ or root)."""
        try:
            text = self._server.jenkins_open(requests.Request("GET", self._base + path))
            return json.loads(text)
        except jenkins.NotFoundException as exc:
            if not missing_ok:
                raise JenkinsUnavailable(f"GET {path}: {exc} (is this Jenkins?)") from exc
            raise
        except (jenkins.JenkinsException, requests.RequestException, ValueError, OSError) as exc:
            raise _unavailable(f"GET {path}", exc) from exc

    @staticmethod
    def _job_path(job: str) -> str:
        return "".join(f"job/{quote(part, safe='')}/" for part in job.split("/"))

    def build_url(self, job: str, build_number: int | None) -> str | None:
        """The build's page, for people (alerts, breaker reasons)."""
        return None if build_number is None else redact_userinfo(f"{self._base}{self._job_path(job)}{build_number}/")

    def user_id(self) -> str:
        """The consumer's own Jenkins user id, as Jenkins records it in a build's cause (asked once)."""
        with self._lock:
            if self._user_id is None:
                me = self._get("me/api/json?tree=id", missing_ok=False)
                if not isinstance(me.get("id"), str):
                    raise JenkinsUnavailable("GET me/api/json: no user id in the answer")
                self._user_id = me["id"]
            return self._user_id

    def root_url(self) -> str | None:
        """Jenkins's own root URL (its "Jenkins URL" setting); None when it has none. For `doctor`."""
        return self._get("api/json?tree=url", missing_ok=False).get("url") or None

    def job_parameters(self, job: str) -> list[str] | None:
        """The names of the job's parameters; None when there is no such job. For `doctor`."""
        try:
            info = self._get(f"{self._job_path(job)}api/json?tree=property[parameterDefinitions[name]]")
        except jenkins.NotFoundException:
            return None
        return [d["name"] for prop in info.get("property") or () if isinstance(prop, dict)
                for d in prop.get("parameterDefinitions") or () if isinstance(d, dict) and "name" in d]

    def queue_build(self, job: str, parameters: dict[str, str]) -> int:
        try:
            return int(self._server.build_job(job, parameters))
        except jenkins.NotFoundException as exc:
            raise JobMissing(f"Jenkins has no job {job!r}") from exc
        except (jenkins.JenkinsException, requests.RequestException, OSError) as exc:
            raise JenkinsUnavailable(f"queue {job}: {exc}") from exc

    def find(self, job: str, site: str, actions: dict[LifecycleAction, int | None]) -> list[Found]:
        """Our queue items and recent builds of `job` serving any action (-> its SentTimestamp, serves)."""
        user = self.user_id()
        found = self.recent(job)
        return [f for f in found if any(serves(f, a, ms) for a, ms in actions.items()) and self._ours(f, job, site, user)]

    def ours(self, job: str, site: str) -> list[Found]:
        """Queue items and recent builds of `job` that are the consumer's deploys of `site`."""
        user = self.user_id()
        return [f for f in self.recent(job) if not_ours(f, site, user) is None]

    def recent(self, job: str) -> list[Found]:
        """Queue items and the last SEARCH_BUILDS builds of `job`, whoever queued them (`status`
        shows each waiting instance's; `find` keeps the consumer's own)."""
        found: list[Found] = []
        tree = "items[id,task[name,url],actions[parameters[name,value],causes[userId]]]"
        for item in self._get(f"queue/api/json?tree={tree}").get("items", []):
            if job_of_url((item.get("task") or {}).get("url", "")) != job:
                continue
            found.append(self._found(item, queue_id=item.get("id"), build_number=None))
        tree = ("builds[number,queueId,result,building,timestamp,actions[parameters[name,value],causes[userId]]]"
                f"{{0,{SEARCH_BUILDS}}}")
        try:
            builds = self._get(f"{self._job_path(job)}api/json?tree={tree}").get("builds", [])
        except jenkins.NotFoundException as exc:
            raise JobMissing(f"Jenkins has no job {job!r}") from exc
        for build in builds:
            found.append(self._found(build, queue_id=build.get("queueId"), build_number=build["number"],
                                     result=build.get("result"), building=bool(build.get("building")),
                                     started_ms=build.get("timestamp") if isinstance(build.get("timestamp"), int) else None))
        return found

    @staticmethod
    def _found(entry: dict, **where) -> Found:
        parameters = _actions_part(entry.get("actions"), "parameters")
        return Found(refs=refs_of(parameters), params=_flat(parameters), user=_user(entry.get("actions")), **where)

    @staticmethod
    def _ours(found: Found, job: str, site: str, user: str) -> bool:
        reason = not_ours(found, site, user)
        if reason is not None:
            log.warning("event=build_not_adopted job=%s queue_id=%s build=%s reason=%r",
                        job, found.queue_id, found.build_number, reason)
        return reason is None

    def progress(self, job: str, queue_id: int | None, build_number: int | None) -> Progress:
        if build_number is None:
            try:
                item = self._server.get_queue_item(queue_id)
            except jenkins.NotFoundException:
                return Progress(gone=True)
            except (jenkins.JenkinsException, requests.RequestException, OSError) as exc:
                raise JenkinsUnavailable(f"queue item {queue_id}: {exc}") from exc
            if item.get("cancelled"):
                return Progress(result="CANCELLED")
            executable = item.get("executable")
            if not executable:
                return Progress()
            build_number = int(executable["number"])
        try:
            build = self._server.get_build_info(job, build_number)
        except (jenkins.JenkinsException, requests.RequestException, OSError) as exc:
            raise JenkinsUnavailable(f"build {job} #{build_number}: {exc}") from exc
        if build.get("building"):
            return Progress(build_number=build_number)
        return Progress(build_number=build_number, result=build.get("result") or "NOT_BUILT")

    def cancel(self, queue_id: int) -> None:
        try:
            self._server.cancel_queue(queue_id)
        except (jenkins.JenkinsException, requests.RequestException, OSError) as exc:
            raise JenkinsUnavailable(f"cancel queue item {queue_id}: {exc}") from exc
