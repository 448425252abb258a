"""Telling a person: a breaker opened or closed, an instance was abandoned, a held action
nears its timeout. Sent to an SNS topic and/or a Slack-compatible webhook.

Sending never blocks a completion: `send()` puts the alert on a bounded queue per target and
returns; one daemon worker per target delivers, so a slow webhook never delays (or, its queue
full, silences) SNS. A full queue drops the alert (counted, logged); a failing target is logged
and counted, never retried (a retrying worker would back up behind a dead target, and the next
alert says the same thing anyway). A webhook delivery has a whole-response deadline: requests'
read timeout is per read, and a server that answers one byte every 3 s held the worker for
good (issue 19 item 8).

Webhook URLs allowed: `https://` to any host, or `http://` to the loopback addresses
127.0.0.1 and [::1] only (a local relay, the tests). Plain http elsewhere would send the
URL, which for Slack *is* the secret (hooks.slack.com/services/T/B/<secret>), in clear text.
No user:password@ (put credentials where the service expects them). Redirects are never
followed: a 3xx is a failure, so a compromised or misconfigured endpoint cannot bounce our
POST to another host. Logs name only the URL's scheme, host and port, never its path or
query (where webhook secrets live), and never the exception text (requests puts the whole
URL in it).

Values from outside (build URLs, group and instance names, results) are cleaned to one
printable line of bounded length, with the `user:token@` of any URL in them dropped; for the webhook `&`, `<` and `>` are escaped as Slack
requires, so a value cannot make a link, a `<!channel>` or a `<@user>` mention.
"""

from __future__ import annotations

import logging
import math
import queue
import shlex
import threading
import time
from dataclasses import dataclass, field

import requests

from helper import PROG
from helper.aws.errors import AwsError, translated
from helper.text import one_line
from helper.urls import check_webhook_url, redact_userinfo, safe_origin  # noqa: F401 (re-exported for tests)

log = logging.getLogger(__name__)

# Alerts come in bursts of a few (one per abandoned instance); 100 waiting means the targets
# are down, and older alerts already say what the newer ones would.
QUEUE_SIZE = 100
# (connect, read): a webhook answers in well under a second; a slow one must not hold the
# worker, and with it every later alert, for long.
WEBHOOK_TIMEOUT_S = (3.0, 5.0)
# The whole delivery, however the server dribbles its answer. Past it the POST is given up
# (counted as failed); while one given-up POST still hangs, later ones fail at once instead of
# piling up threads on a hostile server.
WEBHOOK_DEADLINE_S = 10.0
# A value from outside is cut here: a build URL or a reason is readable, a 1 MB one is not.
MAX_VALUE_CHARS = 300
# SNS: subjects are ASCII, one line, under 100 characters.
MAX_SUBJECT_CHARS = 99
SNS, WEBHOOK = "sns", "webhook"  # the `target` label: a fixed set
ALERT_TARGETS = (SNS, WEBHOOK)
SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def clean(value) -> str:
    """One printable line of at most MAX_VALUE_CHARS characters, with no `user:token@` in it.

    Every value an alert names passes here, so this is where a credential in a URL (a Jenkins
    build URL, a reason quoting one) is dropped, whatever its source (issue 19 item 5); before
    the cut, which could leave `https://user:token` without the `@` that marks it.
    """
    text = redact_userinfo(one_line(value))
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"


def slack_escape(text: str) -> str:
    return "".join(SLACK_ESCAPES.get(c, c) for c in text)


@dataclass(frozen=True)
class Alert:
    """Our template and the values it names; each target renders it its own way."""

    kind: str  # breaker_opened, breaker_closed, abandoned, hold_near_timeout
    site: str
    template: str
    values: dict = field(default_factory=dict)

    def plain(self) -> str:
        return self.template.format(**{k: clean(v) for k, v in self.values.items()})

    def slack(self) -> str:
        return self.template.format(**{k: slack_escape(clean(v)) for k, v in self.values.items()})

    def subject(self) -> str:
        text = f"{PROG}: {self.kind.replace('_', ' ')} ({self.site})"
        return "".join(c if " " <= c <= "~" else "?" for c in text)[:MAX_SUBJECT_CHARS]


# --- the texts -------------------------------------------------------------------------------

def breaker_opened(site: str, revision: str, failures: int, why: str, config_path: str = "deploy.yml") -> Alert:
    # The command must paste and run: it lacked the -c it needs (issue 24).
    return Alert("breaker_opened", clean(site),
                 "Breaker OPEN for site {site}: {failures} consecutive scale-up deploys of revision {revision} "
                 "failed ({why}). No deploy starts for {site}; new instances wait in Pending:Wait until a full "
                 "deploy records another revision or `" + PROG + " breaker reset -c {config} --site {site}`.",
                 {"site": site, "revision": revision or "(not recorded)", "failures": failures, "why": why,
                  "config": shlex.quote(config_path)})


def breaker_closed(site: str, how: str, held: int = 0) -> Alert:
    return Alert("breaker_closed", clean(site),
                 "Breaker closed for site {site}: {how}. {held} held instance(s) are deployed now.",
                 {"site": site, "how": how, "held": held})


def abandoned(site: str, group: str, instance: str, result: str, build_url: str | None) -> Alert:
    return Alert("abandoned", clean(site),
                 "ABANDON on site {site}: instance {instance} of group {group} was not deployed ({result}, "
                 "build {build}). Auto Scaling terminates it and launches a replacement.",
                 {"site": site, "group": group, "instance": instance, "result": result,
                  "build": build_url or "none"})


def hold_near_timeout(site: str, group: str, instance: str, seconds_left: float, default_result: str) -> Alert:
    return Alert("hold_near_timeout", clean(site),
                 "Held instance {instance} of group {group} (site {site}, breaker open): in {minutes} min its "
                 "hook's default result {result} applies. Reset the breaker or deploy a good revision to keep it.",
                 {"site": site, "group": group, "instance": instance,
                  "minutes": math.ceil(max(0.0, seconds_left) / 60), "result": default_result})


# --- delivery --------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlertTargets:
    sns_topic_arn: str | None = None
    webhook_url: str | None = None

    def __post_init__(self) -> None:
        if self.webhook_url is not None:
            check_webhook_url(self.webhook_url)


@dataclass
class AlertCounters:
    """Optional prometheus-client Counters, made on the caller's registry (see `counters_on`)."""

    sent: object = None  # labels: target
    failed: object = None  # labels: target
    dropped: object = None


def counters_on(registry) -> AlertCounters:
    from prometheus_client import Counter

    counters = AlertCounters(
        sent=Counter("adh_alerts_sent", "Alerts delivered", ["target"], registry=registry),
        failed=Counter("adh_alerts_failed", "Alert deliveries that failed", ["target"], registry=registry),
        dropped=Counter("adh_alerts_dropped", "Alerts dropped: queue full or closed", registry=registry),
    )
    for target in ALERT_TARGETS:  # at 0 from the start, so ADHAlertsFailing sees the first failure
        counters.sent.labels(target)
        counters.failed.labels(target)
    return counters


_STOP = object()


class Alerts:
    def __init__(self, targets: AlertTargets, sns=None, session: requests.Session | None = None,
                 counters: AlertCounters | None = None, queue_size: int = QUEUE_SIZE,
                 webhook_timeout_s: tuple[float, float] = WEBHOOK_TIMEOUT_S,
                 webhook_deadline_s: float = WEBHOOK_DEADLINE_S) -> None:
        if targets.sns_topic_arn and sns is None:
            raise ValueError("an SNS topic needs an SNS client")
        self.targets = targets
        self._sns = translated(sns)
        self._session = session or requests.Session()
        self._counters = counters or AlertCounters()
        self._timeout = webhook_timeout_s
        self._deadline_s = webhook_deadline_s
        self._stuck: threading.Thread | None = None  # a webhook POST given up at its deadline, still hanging
        self._lock = threading.Lock()  # the counters
        self._send_lock = threading.Lock()
        self._closed = False
        self._abandon = threading.Event()  # close() ran out of time: drop the rest
        self.sent = self.failed = self.dropped = 0
        deliver = {SNS: self._deliver_sns, WEBHOOK: self._deliver_webhook}
        wanted = [t for t, on in ((SNS, targets.sns_topic_arn), (WEBHOOK, targets.webhook_url)) if on]
        self._queues = {t: queue.Queue(maxsize=queue_size) for t in wanted}
        self._workers = [threading.Thread(target=self._work, args=(self._queues[t], deliver[t]),
                                          name=f"alerts-{t}", daemon=True) for t in wanted]
        for worker in self._workers:
            worker.start()

    def _count(self, name: str, target: str | None = None) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
        counter = getattr(self._counters, name)
        if counter is not None:
            (counter.labels(target=target) if target else counter).inc()

    def send(self, alert: Alert) -> bool:
        """Queue the alert for each target; never blocks. False when any target dropped it."""
        if not self._queues:
            return False
        queued = True
        with self._send_lock:  # nothing slips in behind close()'s stop marker
            for target, waiting in self._queues.items():
                try:
                    if self._closed:
                        raise queue.Full
                    waiting.put_nowait(alert)
                except queue.Full:
                    queued = False
                    self._count("dropped")
                    log.warning("event=alert_dropped target=%s kind=%s site=%s", target, alert.kind, alert.site)
        return queued

    def _work(self, waiting: queue.Queue, deliver) -> None:
        while True:
            alert = waiting.get()
            if alert is _STOP:
                return
            if self._abandon.is_set():
                self._drop_rest(waiting)
                return
            deliver(alert)

    def _drop_rest(self, waiting: queue.Queue) -> None:
        self._count("dropped")
        while True:
            try:
                alert = waiting.get_nowait()
            except queue.Empty:
                return
            if alert is not _STOP:
                self._count("dropped")

    def _deliver_sns(self, alert: Alert) -> None:
        # Here, not at the top: the config checks a webhook URL with this module, and reading a
        # config (every scale-up build does) must not load botocore (tests/test_edges.py).

        try:
            self._sns.publish(TopicArn=self.targets.sns_topic_arn, Subject=alert.subject(), Message=alert.plain())
            self._count("sent", SNS)
        except AwsError as exc:
            self._count("failed", SNS)
            log.warning("event=alert_failed target=sns kind=%s site=%s error=%s",
                        alert.kind, alert.site, type(exc).__name__)

    def _post(self, alert: Alert, outcome: list) -> None:
        try:
            reply = self._session.post(self.targets.webhook_url, json={"text": alert.slack()},
                                       timeout=self._timeout, allow_redirects=False, stream=True)
            reply.close()  # the body is of no use to us, and may be large
            if not 200 <= reply.status_code < 300:
                raise requests.HTTPError(f"HTTP {reply.status_code}")
            outcome.append(None)
        except requests.RequestException as exc:
            outcome.append(exc.args[0] if isinstance(exc, requests.HTTPError) else type(exc).__name__)

    def _deliver_webhook(self, alert: Alert) -> None:
        outcome: list = []
        if self._stuck is not None and self._stuck.is_alive():
            outcome.append("an earlier delivery is still past its deadline")
        else:
            post = threading.Thread(target=self._post, args=(alert, outcome), name="alerts-webhook-post", daemon=True)
            post.start()
            post.join(self._deadline_s)
            if post.is_alive():
                self._stuck = post
                outcome.append(f"no full answer within {self._deadline_s:g} s")
        if outcome and outcome[0] is None:
            self._count("sent", WEBHOOK)
            return
        self._count("failed", WEBHOOK)
        log.warning("event=alert_failed target=webhook url=%s kind=%s site=%s error=%s",
                    safe_origin(self.targets.webhook_url), alert.kind, alert.site, outcome[0])

    def close(self, timeout_s: float) -> bool:
        """Deliver what is queued for up to `timeout_s`, then stop. True when all was delivered."""
        with self._send_lock:
            self._closed = True
        deadline = time.monotonic() + timeout_s
        for waiting in self._queues.values():
            try:
                waiting.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                pass
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        if any(worker.is_alive() for worker in self._workers):
            # Out of time: after its current delivery the worker drops (and counts) what is
            # left and exits. A daemon thread, so it never holds up the process either way.
            self._abandon.set()
            return False
        return True
