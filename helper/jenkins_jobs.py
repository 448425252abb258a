"""The Jenkins seam: queue a build, find the build that serves an action, follow it.

Jenkins is the shared record of which action has a build: every scale-up build carries
its actions in the LIFECYCLE_ACTIONS parameter, so any consumer replica (or the same
one after a crash) can find it instead of starting a second build.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from urllib.parse import quote

import jenkins
import requests

from helper.action import LifecycleAction
from helper.errors import ConfigError, HelperError

ACTIONS_PARAM = "LIFECYCLE_ACTIONS"
# Every parameter a scale-up build is given (helper/deploy.py): the deploy job must define
# each one, which `doctor` checks.
BUILD_PARAMETERS = ("SITE", "INSTANCE_IDS", "REVISION", ACTIONS_PARAM, "DRY_RUN", "SKIP_TESTS")
# How many recent builds to search for one that already serves an action. A consumer
# that was down longer than it takes the job to run this many builds finds none and
# queues a new build, which is still correct, only slower.
SEARCH_BUILDS = 100


class JenkinsUnavailable(HelperError):
    """Jenkins did not answer usefully (down, 5xx, timeout): retry until the deadline."""


@dataclass(frozen=True)
class Found:
    """A queue item or build whose LIFECYCLE_ACTIONS names some of our actions."""

    queue_id: int | None
    build_number: int | None
    refs: tuple[str, ...]
    result: str | None = None
    building: bool = False


@dataclass(frozen=True)
class Progress:
    """Where a queued build is now."""

    build_number: int | None = None
    result: str | None = None  # set once finished; "CANCELLED" for a cancelled item
    gone: bool = False  # the queue item expired before we saw it start


# As ssh treats a private key: any permission for group or others (read, or write, which lets
# them swap the token) means the token may already be someone else's.
CREDENTIALS_FORBIDDEN_MODE = 0o077
# One `user:token` line is well under this; a larger "credentials file" is the wrong file.
CREDENTIALS_MAX_CHARS = 4096


def read_credentials(environ, credentials_file: str | None) -> tuple[str, str]:
    """JENKINS_USER and JENKINS_API_TOKEN, or `user:token` in a file; never the config."""
    user, token = environ.get("JENKINS_USER"), environ.get("JENKINS_API_TOKEN")
    if user and token:
        return user, token
    if credentials_file:
        try:
            with open(os.path.expanduser(credentials_file), encoding="utf-8") as handle:
                # The mode of the file we opened, not of whatever the path names a moment later.
                mode = os.fstat(handle.fileno()).st_mode & 0o777
                if mode & CREDENTIALS_FORBIDDEN_MODE:
                    raise ConfigError(
                        f"{credentials_file}: Jenkins credentials file is open to group or others "
                        f"(mode {mode:04o}); run: chmod 600 {credentials_file}")
                text = handle.read(CREDENTIALS_MAX_CHARS + 1)
        except OSError as exc:
            raise ConfigError(f"{credentials_file}: cannot read Jenkins credentials: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{credentials_file}: Jenkins credentials are not UTF-8 text") from None
        if len(text) > CREDENTIALS_MAX_CHARS:
            raise ConfigError(f"{credentials_file}: expected one line user:api-token, "
                              f"found more than {CREDENTIALS_MAX_CHARS} characters")
        text = text.strip()
        user, sep, token = text.partition(":")
        if sep and user and token:
            return user, token
        raise ConfigError(f"{credentials_file}: expected one line user:api-token")
    raise ConfigError("Jenkins credentials missing: set JENKINS_USER and JENKINS_API_TOKEN "
                      "or lifecycle.jenkins.credentials_file")


def refs_of(parameters: list[dict]) -> tuple[str, ...]:
    for p in parameters or ():
        if p.get("name") == ACTIONS_PARAM and isinstance(p.get("value"), str):
            return tuple(p["value"].split())
    return ()


def covers(ref: str, action: LifecycleAction) -> bool:
    """Does a LIFECYCLE_ACTIONS reference name this action?

    By token when both sides have one; otherwise by group and instance, so a build
    queued for a reconciled action (no token) and one queued from its notification
    find each other.
    """
    group, _, rest = ref.partition(":")
    instance, _, token = rest.partition(":")
    if group != action.group or instance != action.instance_id:
        return False
    if action.token and token not in ("", "-"):
        return token == action.token
    return True


def _params(actions) -> list[dict]:
    for entry in actions or ():
        if isinstance(entry, dict) and "parameters" in entry:
            return entry["parameters"]
    return []


class JenkinsJobs:
    def __init__(self, server: jenkins.Jenkins) -> None:
        self._server = server
        self._base = server.server.rstrip("/") + "/"

    @classmethod
    def connect(cls, url: str, user: str, token: str, timeout_s: float) -> "JenkinsJobs":
        return cls(jenkins.Jenkins(url, username=user, password=token, timeout=timeout_s))

    def _get(self, path: str) -> dict:
        try:
            text = self._server.jenkins_open(requests.Request("GET", self._base + path))
            return json.loads(text)
        except jenkins.NotFoundException:
            raise
        except (jenkins.JenkinsException, requests.RequestException, ValueError, OSError) as exc:
            raise JenkinsUnavailable(f"GET {path}: {exc}") from exc

    @staticmethod
    def _job_path(job: str) -> str:
        return "".join(f"job/{quote(part, safe='')}/" for part in job.split("/"))

    def queue_build(self, job: str, parameters: dict[str, str]) -> int:
        try:
            return int(self._server.build_job(job, parameters))
        except jenkins.NotFoundException as exc:
            raise HelperError(f"Jenkins job {job!r} not found") from exc
        except (jenkins.JenkinsException, requests.RequestException, OSError) as exc:
            raise JenkinsUnavailable(f"queue {job}: {exc}") from exc

    def find(self, job: str, actions: list[LifecycleAction]) -> list[Found]:
        """Queue items and recent builds of `job` that name any of these actions."""
        found: list[Found] = []
        job_url = self._base + self._job_path(job)
        queue = self._get("queue/api/json?tree=items[id,task[url],actions[parameters[name,value]]]")
        for item in queue.get("items", []):
            if (item.get("task") or {}).get("url", "").rstrip("/") != job_url.rstrip("/"):
                continue
            refs = refs_of(_params(item.get("actions")))
            if any(covers(r, a) for r in refs for a in actions):
                found.append(Found(queue_id=item["id"], build_number=None, refs=refs))
        tree = ("builds[number,queueId,result,building,actions[parameters[name,value]]]"
                f"{{0,{SEARCH_BUILDS}}}")
        try:
            builds = self._get(f"{self._job_path(job)}api/json?tree={tree}").get("builds", [])
        except jenkins.NotFoundException as exc:
            raise HelperError(f"Jenkins job {job!r} not found") from exc
        for build in builds:
            refs = refs_of(_params(build.get("actions")))
            if any(covers(r, a) for r in refs for a in actions):
                found.append(Found(queue_id=build.get("queueId"), build_number=build["number"], refs=refs,
                                   result=build.get("result"), building=bool(build.get("building"))))
        return found

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
