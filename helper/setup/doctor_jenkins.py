"""`doctor`'s Jenkins checks: reachable, credentials accepted, the URL is Jenkins's own, each
job exists and takes every parameter the consumer sends. The token is used, never printed:
not from the environment, and not from a `user:token@` in a URL or a library's error text."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import jenkins
import requests

from helper.setup.doctor import FAIL, OK, WARN, Finding
from helper.lifecycle.jenkins_client import BUILD_PARAMETERS as CONSUMER_PARAMETERS

PARAMETERS_PROPERTY = "hudson.model.ParametersDefinitionProperty"
# `scheme://user:password@`: the userinfo part of any URL in a text.
USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]*@")


def redact(text: str) -> str:
    """Drop the userinfo (`user:token@`) of every URL in a text."""
    return USERINFO_RE.sub(r"\1", text)


def same_root(configured: str, root: str) -> bool:
    """Is the URL the consumer uses the one Jenkins calls itself (host case and final slash aside)?"""
    a, b = urlsplit(configured), urlsplit(root)
    return ((a.scheme.lower(), (a.hostname or "").lower(), a.port, a.path.rstrip("/"))
            == (b.scheme.lower(), (b.hostname or "").lower(), b.port, b.path.rstrip("/")))


class JenkinsRejected(Exception):
    """401/403: the user or token is wrong, or lacks Overall/Read."""


class JenkinsDown(Exception):
    """No useful answer: refused, timed out, 5xx."""


class JenkinsProbe:
    """The three reads doctor makes, with python-jenkins' errors sorted into two kinds."""

    def __init__(self, server: jenkins.Jenkins) -> None:
        self._server = server

    @classmethod
    def connect(cls, url: str, user: str, token: str, timeout_s: float) -> "JenkinsProbe":
        return cls(jenkins.Jenkins(url, username=user, password=token, timeout=timeout_s))

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except jenkins.JenkinsException as exc:
            # python-jenkins tells 401/403 apart from 500 only in the message.
            status = next((code for code in ("401", "403") if f"[{code}]" in str(exc)), None)
            if status:
                raise JenkinsRejected(f"HTTP {status}") from None
            raise JenkinsDown(str(exc)) from None
        except (requests.RequestException, OSError) as exc:
            raise JenkinsDown(f"{type(exc).__name__}: {exc}") from None

    def whoami(self) -> str:
        return self._call(self._server.get_whoami).get("id", "?")

    def root_url(self) -> str | None:
        """Jenkins's own root URL (its "Jenkins URL" setting); None when it has none."""
        return self._call(self._server.get_info, "", "?tree=url").get("url") or None

    def parameters(self, job: str) -> list[str] | None:
        """The job's parameter names; None when there is no such job."""
        if self._call(self._server.get_job_name, job) is None:
            return None
        info = self._call(self._server.get_job_info, job)
        return [d["name"] for prop in info.get("property", []) if prop.get("_class") == PARAMETERS_PROPERTY
                for d in prop.get("parameterDefinitions", [])]


def check_jenkins(settings, probe_factory=None) -> list[Finding]:
    return [Finding(f.level, redact(f.subject), redact(f.text), f.fix and redact(f.fix))
            for f in _check_jenkins(settings, probe_factory)]


def check_root_url(url: str, root: str | None) -> list[Finding]:
    if root is None or same_root(url, root):
        return []
    return [Finding(WARN, "jenkins", f"{url} differs from Jenkins's own root URL {root}",
                    f"set lifecycle.jenkins.url to {root} or correct the Jenkins URL in Manage Jenkins > System")]


def _check_jenkins(settings, probe_factory=None) -> list[Finding]:
    lc = settings.config.lifecycle
    url = lc.jenkins.url
    if settings.jenkins_problem:
        return [Finding(FAIL, "jenkins", settings.jenkins_problem,
                        "put JENKINS_USER and JENKINS_API_TOKEN in the consumer's EnvironmentFile (mode 0600)")]
    probe = (probe_factory or JenkinsProbe.connect)(url, settings.jenkins_user, settings.jenkins_token,
                                                    lc.jenkins.timeout_s)
    try:
        probe.whoami()
    except JenkinsRejected as exc:
        return [Finding(FAIL, "jenkins", f"{url} rejects the credentials of user {settings.jenkins_user}: {exc}",
                        f"create a new API token for {settings.jenkins_user} (user menu > Security) "
                        "and set JENKINS_API_TOKEN")]
    except JenkinsDown as exc:
        return [Finding(FAIL, "jenkins", f"{url} is not reachable: {exc}",
                        "check lifecycle.jenkins.url and that the consumer's host can reach it")]
    found = [Finding(OK, "jenkins", f"{url} accepts user {settings.jenkins_user}")]
    try:
        found += check_root_url(url, probe.root_url())
    except (JenkinsRejected, JenkinsDown) as exc:
        found.append(Finding(WARN, "jenkins", f"root URL cannot be read: {exc}"))
    routes = lc.groups.values()
    jobs = sorted({r.job for r in routes} | {r.terminate_job for r in routes if r.terminate_job})
    for job in jobs:
        try:
            names = probe.parameters(job)
        except (JenkinsRejected, JenkinsDown) as exc:
            found.append(Finding(FAIL, f"jenkins job {job}", f"cannot be read: {exc}",
                                 f"give {settings.jenkins_user} Job/Read and Job/Build on it"))
            continue
        if names is None:
            found.append(Finding(FAIL, f"jenkins job {job}", "does not exist",
                                 "create it (see the Jenkinsfile) or fix lifecycle.jenkins.job"))
            continue
        missing = [p for p in CONSUMER_PARAMETERS if p not in names]
        if missing:
            found.append(Finding(FAIL, f"jenkins job {job}",
                                 f"lacks parameter(s) {', '.join(missing)} that the consumer sends",
                                 f"add string parameter(s) {', '.join(missing)} to the job"))
        else:
            found.append(Finding(OK, f"jenkins job {job}", f"takes {', '.join(CONSUMER_PARAMETERS)}"))
    return found
