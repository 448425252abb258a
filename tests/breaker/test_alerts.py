"""Alerts (issue 11): a real webhook server on 127.0.0.1, SNS on the moto server read through
SQS queues subscribed to the topic, failing targets that never block the caller, hostile values."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry

from helper.breaker.alerts import (
    Alerts,
    AlertTargets,
    abandoned,
    breaker_closed,
    breaker_opened,
    check_webhook_url,
    counters_on,
    hold_near_timeout,
    safe_origin,
)
from helper.errors import ConfigError
from helper.sandbox.aws import fleet
from tests.polling import wait_for

REGION = "us-east-1"
SECRET_PATH = "/services/T000/B000/s3cretWebhookPath"
# Short client timeouts: a slow server is "slow" after 0.3 s, so no test waits long.
FAST_TIMEOUT_S = (0.5, 0.3)
# send() only queues: it must return in far less than any network call could take.
SEND_DEADLINE_S = 0.05


class Webhook:
    """A local Slack-compatible webhook: records JSON bodies, answers with `status`."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status = 200
        self.location = ""
        self.release = threading.Event()  # a slow webhook waits for this (set at teardown)
        self.slow = False
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if hook.slow:
                    hook.release.wait(10)
                hook.bodies.append({"path": self.path, "json": json.loads(body)})
                self.send_response(hook.status)
                if hook.location:
                    self.send_header("Location", hook.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}?token=qs3cret"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def texts(self) -> list[str]:
        return [b["json"]["text"] for b in self.bodies]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.stop()


@pytest.fixture
def alerts_factory():
    made = []

    def make(targets, **kwargs):
        alerts = Alerts(targets, **kwargs)
        made.append(alerts)
        return alerts

    yield make
    for alerts in made:
        alerts.close(1.0)


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET_PATH}"


OPENED = breaker_opened("web", "v1.4.2", 3, "3 consecutive scale-up deploys of v1.4.2 failed")


# --- texts -----------------------------------------------------------------------------------

def test_the_four_texts_name_what_a_person_needs():
    assert OPENED.plain() == (
        "Breaker OPEN for site web: 3 consecutive scale-up deploys of revision v1.4.2 failed (3 consecutive "
        "scale-up deploys of v1.4.2 failed). No deploy starts for web; new instances wait in Pending:Wait until a "
        "full deploy records another revision or `aws-deploy-helper breaker reset -c deploy.yml --site web`.")
    assert breaker_closed("web", "reset by an operator", 2).plain() == (
        "Breaker closed for site web: reset by an operator. 2 held instance(s) are deployed now.")
    assert abandoned("web", "web-asg", "i-0abc", "FAILURE", "https://ci/job/deploy/12/").plain() == (
        "ABANDON on site web: instance i-0abc of group web-asg was not deployed (FAILURE, build "
        "https://ci/job/deploy/12/). Auto Scaling terminates it and launches a replacement.")
    assert hold_near_timeout("web", "web-asg", "i-0abc", 1501, "ABANDON").plain() == (
        "Held instance i-0abc of group web-asg (site web, breaker open): in 26 min its hook's default result "
        "ABANDON applies. Reset the breaker or deploy a good revision to keep it.")
    assert OPENED.subject() == "aws-deploy-helper: breaker opened (web)"


HOSTILE_URL = "https://ci/job/x/1/?a=1&b=2 <!channel> <@U123> <https://evil.example|click here>\n*fake alert*"


def test_outside_values_cannot_inject_slack_markup_or_lines():
    text = abandoned("web", "web-asg<!here>", "i-1", "FAILURE", HOSTILE_URL).slack()
    assert "<" not in text and ">" not in text and "\n" not in text
    assert "&lt;!channel&gt;" in text and "&lt;@U123&gt;" in text and "a=1&amp;b=2" in text
    assert "web-asg&lt;!here&gt;" in text
    assert "&amp;lt;" not in text  # escaped once
    plain = abandoned("web", "g", "i-1", "FAILURE", "x" * 5000 + "\x1b[2J").plain()
    assert len(plain) < 600 and "\x1b" not in plain


@pytest.mark.parametrize("url", [
    "https://hooks.slack.com/services/T/B/x", "http://127.0.0.1:8080/hook", "http://[::1]:9/hook",
])
def test_allowed_webhook_urls(url):
    assert check_webhook_url(url) == url


@pytest.mark.parametrize("url, why", [
    ("http://hooks.slack.com/services/T/B/x", "must be https"),
    ("http://localhost:8080/hook", "must be https"),
    ("http://127.0.0.2/hook", "must be https"),
    ("ftp://example.com/x", "must be https"),
    ("file:///etc/passwd", "no host"),
    ("https://user:pw@example.com/x", "user:password"),
    ("https://example.com:99999/x", "not a URL"),
    ("https:///x", "no host"),
    ("", "no host"),
])
def test_refused_webhook_urls_name_why_without_echoing_them(url, why):
    with pytest.raises(ConfigError, match=why) as error:
        AlertTargets(webhook_url=url)
    assert (url or "\0") not in str(error.value)


def test_a_log_shows_only_the_origin():
    assert safe_origin("https://hooks.slack.com/services/T/B/secret?x=1") == "https://hooks.slack.com"
    assert safe_origin("http://[::1]:9/a") == "http://[::1]:9"


# --- webhook ---------------------------------------------------------------------------------

def test_webhook_receives_slack_json(webhook, alerts_factory):
    registry = CollectorRegistry()
    alerts = alerts_factory(AlertTargets(webhook_url=webhook.url), counters=counters_on(registry))
    assert alerts.send(OPENED)
    assert alerts.close(5.0)
    assert webhook.bodies == [{"path": SECRET_PATH + "?token=qs3cret", "json": {"text": OPENED.slack()}}]
    assert (alerts.sent, alerts.failed, alerts.dropped) == (1, 0, 0)
    assert registry.get_sample_value("adh_alerts_sent_total", {"target": "webhook"}) == 1


@pytest.mark.parametrize("setup, error", [
    (lambda hook: setattr(hook, "status", 500), "HTTP 500"),
    (lambda hook: (setattr(hook, "status", 302), setattr(hook, "location", "http://127.0.0.1:1/elsewhere")),
     "HTTP 302"),
    (lambda hook: setattr(hook, "slow", True), "ReadTimeout"),
    (lambda hook: setattr(hook, "url", refused_url()), "ConnectionError"),
], ids=["500", "redirect-not-followed", "slow", "refused"])
def test_a_failing_webhook_is_counted_logged_without_secrets_and_never_blocks(
        webhook, alerts_factory, caplog, setup, error):
    setup(webhook)
    registry = CollectorRegistry()
    alerts = alerts_factory(AlertTargets(webhook_url=webhook.url), counters=counters_on(registry),
                            webhook_timeout_s=FAST_TIMEOUT_S)
    caplog.set_level(logging.WARNING, logger="helper.breaker.alerts")
    started = time.monotonic()
    for _ in range(3):
        alerts.send(OPENED)
    assert time.monotonic() - started < SEND_DEADLINE_S * 3
    wait_for(lambda: alerts.failed == 3, "three failed deliveries")
    assert alerts.sent == 0
    assert registry.get_sample_value("adh_alerts_failed_total", {"target": "webhook"}) == 3
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged.count("event=alert_failed") == 3 and error in logged
    assert "s3cret" not in logged and "qs3cret" not in logged and "/services/" not in logged


def test_a_full_queue_drops_and_counts_instead_of_blocking(webhook, alerts_factory):
    webhook.slow = True
    alerts = alerts_factory(AlertTargets(webhook_url=webhook.url), queue_size=2, webhook_timeout_s=(0.5, 5.0))
    started = time.monotonic()
    results = [alerts.send(OPENED) for _ in range(10)]
    assert time.monotonic() - started < SEND_DEADLINE_S * 10
    # One in the worker's hands, two queued, seven dropped (the worker may not have taken the first yet).
    assert results.count(False) in (7, 8) and alerts.dropped == results.count(False)
    webhook.release.set()


def test_close_gives_up_at_its_timeout_and_drops_the_rest(webhook, alerts_factory):
    webhook.slow = True
    alerts = alerts_factory(AlertTargets(webhook_url=webhook.url), webhook_timeout_s=(0.5, 5.0))
    for _ in range(3):
        alerts.send(OPENED)
    started = time.monotonic()
    assert alerts.close(0.2) is False
    assert time.monotonic() - started < 1.0
    assert alerts.send(OPENED) is False  # closed
    webhook.release.set()
    wait_for(lambda: alerts.dropped >= 3, "the undelivered alerts counted as dropped")
    assert alerts.sent + alerts.dropped == 4


# --- SNS -------------------------------------------------------------------------------------

@pytest.fixture
def topic(aws):
    sns, sqs = fleet.client("sns", aws, REGION), fleet.client("sqs", aws, REGION)
    arn = sns.create_topic(Name="deploy-alerts")["TopicArn"]
    queues = {}
    for name, raw in (("raw", "true"), ("wrapped", "false")):
        url = sqs.create_queue(QueueName=f"alerts-{name}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": raw})
        queues[name] = url
    return sns, sqs, arn, queues


def receive_all(sqs, url: str, count: int) -> list[str]:
    bodies: list[str] = []

    def more():
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        bodies.extend(m["Body"] for m in reply.get("Messages", []))
        return len(bodies) >= count

    wait_for(more, f"{count} message(s) on {url}")
    return bodies


def test_sns_and_webhook_get_the_same_text(topic, webhook, alerts_factory):
    sns, sqs, arn, queues = topic
    alerts = alerts_factory(AlertTargets(sns_topic_arn=arn, webhook_url=webhook.url), sns=sns)
    sent = [OPENED, abandoned("web", "web-asg", "i-0abc", "FAILURE", "https://ci/job/deploy/12/")]
    for alert in sent:
        alerts.send(alert)
    assert alerts.close(5.0)
    assert (alerts.sent, alerts.failed) == (4, 0)
    assert receive_all(sqs, queues["raw"], 2) == [a.plain() for a in sent]
    wrapped = [json.loads(body) for body in receive_all(sqs, queues["wrapped"], 2)]
    assert [(w["Subject"], w["Message"]) for w in wrapped] == [(a.subject(), a.plain()) for a in sent]
    assert webhook.texts() == [a.plain() for a in sent]  # nothing to escape: the same text


def test_a_failing_topic_is_counted_and_the_webhook_still_gets_the_alert(aws, webhook, alerts_factory):
    sns = fleet.client("sns", aws, REGION)
    missing = f"arn:aws:sns:{REGION}:123456789012:no-such-topic"
    alerts = alerts_factory(AlertTargets(sns_topic_arn=missing, webhook_url=webhook.url), sns=sns)
    alerts.send(OPENED)
    assert alerts.close(5.0)
    assert (alerts.sent, alerts.failed) == (1, 1) and webhook.texts() == [OPENED.slack()]


def test_no_target_sends_nothing_and_an_sns_target_needs_a_client():
    alerts = Alerts(AlertTargets())
    assert alerts.send(OPENED) is False and alerts.dropped == 0
    assert alerts.close(1.0)
    with pytest.raises(ValueError):
        Alerts(AlertTargets(sns_topic_arn="arn:aws:sns:us-east-1:123456789012:x"))


def test_a_webhook_that_dribbles_never_silences_sns_and_each_delivery_has_a_deadline(topic, webhook, alerts_factory):
    """Issue 19 item 8: a webhook answering a byte every 3 s held the one worker, and every later alert,
    SNS too, was dropped. Each target has its own worker, and a webhook delivery its own whole deadline."""
    sns, sqs, arn, queues = topic
    webhook.slow = True  # answers nothing until released: no per-read timeout (5 s here) fires first
    alerts = alerts_factory(AlertTargets(sns_topic_arn=arn, webhook_url=webhook.url), sns=sns,
                            webhook_timeout_s=(0.5, 5.0), webhook_deadline_s=0.3)
    sent = [OPENED, abandoned("web", "web-asg", "i-0abc", "FAILURE", "https://ci/job/deploy/12/"), OPENED]
    started = time.monotonic()
    for alert in sent:
        assert alerts.send(alert)
    assert receive_all(sqs, queues["raw"], 3) == [a.plain() for a in sent]  # SNS is not behind the webhook
    wait_for(lambda: alerts.failed == 3, "each webhook delivery given up at its deadline")
    assert time.monotonic() - started < 3.0, "three deadlines of 0.3 s, not three read timeouts of 5 s"
    assert alerts.close(2.0)
    webhook.release.set()


def test_the_reset_command_an_alert_suggests_names_the_config_and_pastes_as_one_command():
    """Issue 24: the suggested `breaker reset --site web` lacked the -c it needs."""
    import shlex

    text = breaker_opened("web", "v1", 3, "why", "/etc/aws-deploy-helper/deploy prod.yml").plain()
    command = text.split("`")[1]
    assert shlex.split(command) == ["aws-deploy-helper", "breaker", "reset", "-c",
                                    "/etc/aws-deploy-helper/deploy prod.yml", "--site", "web"]


class Dribbler:
    """A webhook that reads the request and answers one byte per `every_s`, never finishing:
    the server of issue 19 item 8 (a byte every 3 s there), faster so no read timeout fires."""

    def __init__(self, every_s: float = 0.05) -> None:
        self.stop = threading.Event()
        self.requests = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}{SECRET_PATH}"
        self.every_s = every_s
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:  # the accept timeout: look at the stop flag again
                continue
            self.requests += 1
            threading.Thread(target=self._dribble, args=(conn,), daemon=True).start()

    def _dribble(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100000:
                    if self.stop.wait(self.every_s):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:  # the client gave up and closed
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def dribbler():
    server = Dribbler()
    yield server
    server.close()


def test_a_webhook_dribbling_inside_the_read_timeout_is_given_up_at_the_deadline_and_sns_still_gets_all(
        topic, dribbler, alerts_factory):
    """Issue 19 item 8 (second pass), with a real dribbling server: a byte comes well inside
    requests' per-read timeout, so only the whole-response deadline ends a delivery; meanwhile
    SNS, on its own worker, gets every alert."""
    sns, sqs, arn, queues = topic
    alerts = alerts_factory(AlertTargets(sns_topic_arn=arn, webhook_url=dribbler.url), sns=sns,
                            webhook_timeout_s=(0.5, 0.5), webhook_deadline_s=0.3)
    sent = [OPENED, breaker_closed("web", "a new revision was recorded"), OPENED]
    started = time.monotonic()
    for alert in sent:
        assert alerts.send(alert)
    assert receive_all(sqs, queues["raw"], 3) == [a.plain() for a in sent]
    wait_for(lambda: alerts.failed == 3, "each webhook delivery given up")
    assert time.monotonic() - started < 3.0, "deadlines of 0.3 s, not a dribble that never ends"
    assert dribbler.requests == 1, "while the given-up POST still dribbles, later ones fail at once"
    assert alerts.close(2.0)
