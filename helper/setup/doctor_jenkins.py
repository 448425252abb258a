"""`doctor`'s Jenkins checks: reachable, credentials accepted, the URL is Jenkins's own, each
job exists and takes every parameter the consumer sends. The token is used, never printed:
not from the environment, and not from a `user:token@` in a URL or a library's error text."""

from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit

from helper.consumer.jenkins_client import BUILD_PARAMETERS as CONSUMER_PARAMETERS
from helper.consumer.jenkins_client import JenkinsJobs, JenkinsRejected, JenkinsUnavailable
from helper.setup.findings import FAIL, OK, WARN, Finding
from helper.urls import redact_userinfo as redact


def same_root(configured: str, root: str) -> bool:
    """Is the URL the consumer uses the one Jenkins calls itself (host case and final slash aside)?"""
    a, b = urlsplit(configured), urlsplit(root)
    return ((a.scheme.lower(), (a.hostname or "").lower(), a.port, a.path.rstrip("/"))
            == (b.scheme.lower(), (b.hostname or "").lower(), b.port, b.path.rstrip("/")))


def check_jenkins(settings, jobs_factory: Callable | None = None) -> list[Finding]:
    """Through the consumer's own client (helper/consumer/jenkins_client.py): what works for
    doctor works for the consumer. `jobs_factory(url, user, token, timeout_s)` builds it."""
    return [Finding(f.level, redact(f.subject), redact(f.text), f.fix and redact(f.fix))
            for f in _check_jenkins(settings, jobs_factory or JenkinsJobs.connect)]


def check_root_url(url: str, root: str | None) -> list[Finding]:
    if root is None or same_root(url, root):
        return []
    return [Finding(WARN, "jenkins", f"{url} differs from Jenkins's own root URL {root}",
                    f"set lifecycle.jenkins.url to {root} or correct the Jenkins URL in Manage Jenkins > System")]


def _rejected(exc: JenkinsRejected) -> str:
    return f"HTTP {exc.status}"


def _check_jenkins(settings, jobs_factory: Callable) -> list[Finding]:
    lc = settings.config.lifecycle
    url = lc.jenkins.url
    if settings.jenkins_problem:
        return [Finding(FAIL, "jenkins", settings.jenkins_problem,
                        "put JENKINS_USER and JENKINS_API_TOKEN in the consumer's EnvironmentFile (mode 0600)")]
    jobs = jobs_factory(url, settings.jenkins_user, settings.jenkins_token, lc.jenkins.timeout_s)
    try:
        jobs.user_id()
    except JenkinsRejected as exc:
        return [Finding(FAIL, "jenkins", f"{url} rejects the credentials of user {settings.jenkins_user}: "
                        f"{_rejected(exc)}",
                        f"create a new API token for {settings.jenkins_user} (user menu > Security) "
                        "and set JENKINS_API_TOKEN")]
    except JenkinsUnavailable as exc:
        return [Finding(FAIL, "jenkins", f"{url} is not reachable: {exc}",
                        "check lifecycle.jenkins.url and that the consumer's host can reach it")]
    found = [Finding(OK, "jenkins", f"{url} accepts user {settings.jenkins_user}")]
    try:
        found += check_root_url(url, jobs.root_url())
    except JenkinsUnavailable as exc:
        found.append(Finding(WARN, "jenkins", f"root URL cannot be read: {exc}"))
    routes = lc.groups.values()
    for job in sorted({r.job for r in routes} | {r.terminate_job for r in routes if r.terminate_job}):
        try:
            names = jobs.job_parameters(job)
        except JenkinsUnavailable as exc:
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
