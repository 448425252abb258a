"""Issue 11 end to end against the sandbox: a bad revision opens the site's breaker, new instances
wait in Pending:Wait instead of churning, a person is told (SNS and a webhook), and a full deploy
of a good revision lets the held instance in. Each test reads as the sentence in its name."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import jenkins
from helper.breaker.state import BreakerState, BreakerStore, State
from helper.sandbox.aws import fleet, lifecycle
from helper.sandbox.aws import state as sandbox_state
from tests.scenario import GROUP, REGION, SITE, Scenario, wait_for
from tests.units import sample


class Webhook:
    """A Slack-compatible webhook on 127.0.0.1: keeps every {"text": ...} it is sent."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.texts.append(json.loads(body)["text"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/breaker"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Topic:
    """An SNS topic with an SQS queue subscribed to it: what a person's mail or pager would get."""

    def __init__(self, url: str) -> None:
        self.sns = fleet.client("sns", url, REGION)
        self.sqs = fleet.client("sqs", url, REGION)
        self.arn = self.sns.create_topic(Name="deploy-alerts")["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url,
                                                  AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.arn, Protocol="sqs", Endpoint=queue_arn)
        self.texts: list[str] = []

    def read(self) -> list[str]:
        """Every alert text published so far (SNS's envelope unwrapped)."""
        while messages := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                   WaitTimeSeconds=0).get("Messages"):
            for m in messages:
                self.texts.append(json.loads(m["Body"])["Message"])
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return self.texts


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.stop()


@pytest.fixture
def world(aws, tmp_path, webhook, request):
    marker = request.node.get_closest_marker("scenario")
    scenario = Scenario(aws, tmp_path, **(marker.kwargs if marker else {}))
    scenario.topic = Topic(aws)
    scenario.set_lifecycle(alerts={"sns_topic_arn": scenario.topic.arn, "webhook_url": webhook.url})
    yield scenario
    scenario.close()


class BadRevision:
    """The sandbox's deploy job fails an instance that has a fail/<instance id> file: while on,
    every instance the group launches gets one, as every host fails to run a broken revision."""

    def __init__(self, world: Scenario) -> None:
        self.world = world
        self.first = set(world.instances())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for instance in set(self.world.instances()) - self.first:
                (self.world.tmp / "fail" / instance).touch()

    def fixed(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for path in (self.world.tmp / "fail").iterdir():
            path.unlink()


def kinds(texts: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for text in texts:
        kind = next(k for k, start in (("opened", "Breaker OPEN"), ("closed", "Breaker closed"),
                                       ("abandoned", "ABANDON on site"), ("near_timeout", "Held instance"))
                    if text.startswith(start))
        found[kind] = found.get(kind, 0) + 1
    return found


FAST_RECHECK = lambda consumer: setattr(consumer.parked, "recheck_s", 0.3)  # noqa: E731


@pytest.mark.scenario(breaker={"failures": 3, "margin_s": 60})
def test_bad_revision_opens_the_breaker_holds_the_fourth_launch_and_a_good_full_deploy_lets_it_in(world, webhook):
    from helper.deploys import revision

    revision.record(str(world.tmp / "revisions"), SITE, "v2")  # the bad one: every deploy of it fails
    bad = BadRevision(world)
    first, _ = world.start_consumer(FAST_RECHECK)
    world.scale_to(3)
    # The launch and Auto Scaling's two replacements after ABANDON: three failed deploys of v2.
    wait_for(lambda: len([b for b in world.builds() if b.result == "FAILURE"]) == 3, timeout_s=60,
             what="three failed scale-up deploys")
    held = wait_for(lambda: sample(first, "adh_actions_held", site=SITE) == 1 and world.instances("Pending:Wait"),
                    timeout_s=30, what="the fourth launch held")
    (fourth,) = held
    assert sample(first, "adh_breaker_open", site=SITE) == 1
    assert sample(first, "adh_breaker_opened_total", site=SITE) == 1
    assert sample(first, "adh_actions_completed_total", result="ABANDON") == 3
    assert len(world.builds()) == 3 and not world.scale_up_builds_for(fourth), "no build for a held launch"
    tag = BreakerStore(world.asg).read(SITE, [GROUP])
    assert (tag.state, tag.revision, tag.failures) == (State.OPEN, "v2", 3)

    # A restart in the middle, into two replicas: the breaker lives in the group's tags, so both
    # still hold the launch (its message is released on shutdown and goes to one of them).
    world.stop_consumers()
    assert world.instances("Pending:Wait") == [fourth]
    replicas = [world.start_consumer(FAST_RECHECK)[0] for _ in range(2)]
    wait_for(lambda: sum(sample(c, "adh_actions_held", site=SITE) for c in replicas) == 1, timeout_s=30,
             what="the launch held again after the restart")
    # Each replica's gauge is set by its own upkeep pass, which may come a moment after the hold.
    wait_for(lambda: all(sample(c, "adh_breaker_open", site=SITE) == 1 for c in replicas), timeout_s=30,
             what="both replicas to see the breaker open")
    assert len(world.builds()) == 3

    # A full deploy of a good revision records v3: the breaker closes and the held launch is deployed.
    bad.fixed()
    client = jenkins.Jenkins(world.jenkins.url, "deployer", "s3cret-token", timeout=10)
    client.build_job("deploy", {"SITE": SITE, "REVISION": "v3"})
    wait_for(lambda: world.all_in_service([fourth]), timeout_s=60, what="the held launch deployed and InService")
    assert world.revision_of(fourth) == "v3"
    assert [b.result for b in world.scale_up_builds_for(fourth)] == ["SUCCESS"], "one build for the held launch"
    assert len(world.builds()) == 5  # 3 failed scale-ups, the full deploy, the held launch's one build
    assert BreakerStore(world.asg).read(SITE, [GROUP]).state is State.CLOSED

    # A person was told: once on opening, once per ABANDON, once on closing; SNS and the webhook alike.
    wait_for(lambda: kinds(world.topic.read()).get("closed") == 1, timeout_s=15, what="the closing alert")
    wait_for(lambda: len(webhook.texts) == len(world.topic.texts), timeout_s=15, what="the webhook too")
    assert kinds(world.topic.texts) == {"opened": 1, "abandoned": 3, "closed": 1}
    assert sorted(webhook.texts) == sorted(world.topic.texts), "the same text through both targets"
    opened = next(t for t in world.topic.texts if t.startswith("Breaker OPEN"))
    assert "3 consecutive scale-up deploys of revision v2 failed" in opened
    abandons = [t for t in world.topic.texts if t.startswith("ABANDON")]
    assert all("(FAILURE, build http://" in t for t in abandons)
    world.stats = {"builds": len(world.builds()), "abandoned": 3, "alerts": len(world.topic.texts)}
    print(f"\nbreaker scenario: builds started {len(world.builds())} (3 FAILURE, 1 full deploy, 1 held launch), "
          f"instances abandoned 3, alerts sent {len(world.topic.texts)} per target {kinds(world.topic.texts)}")


@pytest.mark.scenario(breaker={"on_open": "abandon"})
def test_with_on_open_abandon_a_launch_is_abandoned_without_a_build_and_alerted(world, webhook):
    BreakerStore(world.asg).write(SITE, [GROUP], BreakerState(State.OPEN, "v1", 3, "2026-11-27T17:00:00Z", "test"))
    consumer, _ = world.start_consumer()
    (new,) = world.scale_to(3)
    wait_for(lambda: new not in world.instances(), timeout_s=30, what="ABANDON at once")
    wait_for(lambda: sample(consumer, "adh_actions_completed_total", result="ABANDON") >= 1, what="counted")
    assert world.builds() == [], "no build while the breaker is open"
    wait_for(lambda: any(new in t for t in world.topic.read()), timeout_s=15, what="the abandon alert")
    assert any(f"instance {new} " in t and "build none" in t for t in world.topic.texts)
    print(f"\non_open abandon: builds started {len(world.builds())}, instances abandoned "
          f"{sample(consumer, 'adh_actions_completed_total', result='ABANDON'):g} so far, alerts {kinds(world.topic.texts)}")


@pytest.mark.scenario(breaker={"margin_s": 2700}, heartbeat_interval_s=0.05, batch_window_s=0.05)
def test_held_action_reaching_the_margin_is_alerted_once_then_gets_the_hooks_default_result(world, webhook):
    # Opened by earlier failures (or an operator): this test is about time, not about opening.
    BreakerStore(world.asg).write(SITE, [GROUP], BreakerState(State.OPEN, "v1", 3, "2026-11-27T17:00:00Z", "test"))
    lifecycle.set_time_scale(60.0)  # the hook's 30 s heartbeat timeout is 0.5 s; its global 3000 s is 50 s
    clock = sandbox_state.current().clock
    start_wall, start_s = datetime.now(timezone.utc), clock.now_s()

    def sandbox_time(consumer) -> None:  # the consumer's wall clock runs with the sandbox's
        consumer.breakers.wall = lambda: start_wall + timedelta(seconds=clock.now_s() - start_s)

    consumer, _ = world.start_consumer(sandbox_time)
    (new,) = world.scale_to(3)
    # Give up at 3000 - 2700 = 300 sandbox seconds (5 s real); alert in the 2700 s before that
    # (2700 s is the largest margin a 3000 s global timeout takes unclamped: nine tenths).
    wait_for(lambda: new not in world.instances(), timeout_s=30, what="the hook's default result (ABANDON)")
    wait_for(lambda: sample(consumer, "adh_hold_timeouts_total", result="ABANDON") >= 1, what="counted")
    assert world.builds() == []
    assert sample(consumer, "adh_actions_gone_total") == 0, "completed by us, before AWS's own timeout"
    wait_for(lambda: any(f"instance {new} " in t and t.startswith("ABANDON") for t in world.topic.read()),
             timeout_s=60, what="the abandon alert")
    near = [t for t in world.topic.texts if t.startswith("Held instance") and new in t]
    assert len(near) == 1, "alerted once however many rounds it was held"
    assert "default result ABANDON applies" in near[0]
    print(f"\nhold timeout: builds started {len(world.builds())}, instances given the default ABANDON "
          f"{sample(consumer, 'adh_hold_timeouts_total', result='ABANDON'):g} so far, near-timeout alerts for {new}: "
          f"{len(near)}, alerts {kinds(world.topic.texts)}")


@pytest.mark.scenario(visibility_timeout_s=1, reconcile_interval_s=1, breaker={"margin_s": 60})
def test_an_instance_found_by_reconciliation_is_held_too_and_a_reset_deploys_it(world):
    BreakerStore(world.asg).write(SITE, [GROUP], BreakerState(State.OPEN, "v1", 3, "2026-11-27T17:00:00Z", "test"))
    (new,) = world.scale_to(3)
    world.sqs.purge_queue(QueueUrl=world.queue_url)  # no message: only the two-pass reconciliation finds it
    consumer, _ = world.start_consumer(FAST_RECHECK)
    wait_for(lambda: sample(consumer, "adh_actions_held", site=SITE) == 1, what="reconciled, then held")
    assert world.builds() == [] and world.instances("Pending:Wait") == [new]
    reset = subprocess.run([sys.executable, "-m", "helper", "breaker", "reset", "-c", str(world.config_path),
                            "--site", SITE], env=world.env(), capture_output=True, text=True, timeout=60)
    assert reset.returncode == 0, reset.stderr
    assert "1 held instance(s) will be deployed by the consumer" in reset.stdout
    wait_for(lambda: world.all_in_service([new]), timeout_s=30, what="deployed after the reset")
    assert len(world.builds()) == 1 and world.builds()[0].result == "SUCCESS"
    wait_for(lambda: kinds(world.topic.read()).get("closed") == 1, timeout_s=15, what="the reset's alert")
    print(f"\nreset scenario: builds started {len(world.builds())}, instances abandoned 0, "
          f"alerts sent {len(world.topic.texts)} per target {kinds(world.topic.texts)}")


@pytest.mark.scenario(breaker={"failures": 1, "margin_s": 60})
def test_a_dead_alert_target_is_counted_and_never_blocks_a_completion(world):
    world.set_lifecycle(alerts={"webhook_url": "http://127.0.0.1:9/dead"})  # nothing listens on port 9
    consumer, _ = world.start_consumer()
    (world.tmp / "fail" / "once").touch()
    (bad,) = world.scale_to(3)
    wait_for(lambda: bad not in world.instances(), timeout_s=30, what="ABANDON despite the dead webhook")
    # The opening and the ABANDON alerts both failed, counted; the replacement is held, not churned.
    wait_for(lambda: sample(consumer, "adh_alerts_failed_total", target="webhook") == 2, what="both failures counted")
    assert sample(consumer, "adh_alerts_sent_total", target="webhook") == 0
    wait_for(lambda: sample(consumer, "adh_actions_held", site=SITE) == 1, what="the replacement held")
    assert len(world.builds()) == 1


@pytest.mark.scenario(breaker={"margin_s": 60})
def test_a_copy_with_a_past_time_does_not_start_the_hold_early(world):
    """Issue 19 item 3: a copy of the genuine notification dated two hours ago made the held action take
    its default result at once (the hook's global timeout is 3000 s). The hold counts from our own and SQS's clocks."""
    BreakerStore(world.asg).write(SITE, [GROUP], BreakerState(State.OPEN, "v1", 3, "2026-11-27T17:00:00Z", "test"))
    (new,) = world.scale_to(3)
    body, receipt = world.take_notice(new)
    body["Time"] = (datetime.now(timezone.utc) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(body))
    world.sqs.delete_message(QueueUrl=world.queue_url, ReceiptHandle=receipt)  # only the copy reaches us
    consumer, _ = world.start_consumer()
    wait_for(lambda: sample(consumer, "adh_actions_held", site=SITE) == 1, what="the action held")
    beats = sample(consumer, "adh_heartbeats_total")
    wait_for(lambda: sample(consumer, "adh_heartbeats_total") >= beats + 3, what="three more rounds of the hold")
    assert sample(consumer, "adh_hold_timeouts_total", result="ABANDON") == 0
    assert new in world.instances("Pending:Wait"), "still held, not given its default result"
