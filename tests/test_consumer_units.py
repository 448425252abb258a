"""The consumer's pure parts, as tables: batching, which build serves an action, what is in
flight, Jenkins credentials, back-off, and the lifecycle section's errors. No servers."""

from __future__ import annotations

import random
import textwrap

import pytest

from helper.lifecycle.action import LAUNCHING, TERMINATING, LifecycleAction
from helper.lifecycle.batcher import Batcher
from helper.config.document import parse as parse_config
from helper.lifecycle.backoff import BACKOFF_BASE_S, BACKOFF_MAX_S, backoff_s
from helper.errors import ConfigError
from helper.lifecycle.inflight import RECENTLY_DONE_MAX, InFlight
from helper.lifecycle.autoscaling import Seen, mismatch
from helper.config.credentials import read_credentials
from helper.lifecycle.jenkins_client import ACTIONS_PARAM, Found, covers, job_of_url, not_ours, refs_of, serves
from helper.lifecycle.sqs import Message, dead_letter_url
from helper.config.yamlfile import load_text

GROUP, INSTANCE = "web-asg", "i-0123456789abcdef0"


def action(token: str | None = "tok-a", group: str = GROUP, instance: str = INSTANCE,
           transition: str = LAUNCHING) -> LifecycleAction:
    return LifecycleAction(group=group, instance_id=instance, transition=transition, token=token)


def message(n: int) -> Message:
    return Message(message_id=f"m{n}", receipt_handle=f"r{n}", body="{}", receive_count=1, sent_at_ms=0)


# --- Batcher ----------------------------------------------------------------------------------

def test_batch_closes_when_its_window_has_passed():
    batcher = Batcher(window_s=3.0, max_size=20)
    batcher.add("web", "a", now=10.0)
    batcher.add("web", "b", now=12.0)
    assert batcher.due(12.99) == []
    assert batcher.due(13.0) == [("web", ["a", "b"])]
    assert batcher.due(100.0) == [] and len(batcher) == 0


def test_full_batch_is_due_at_once_and_the_next_one_opens_a_new_window():
    batcher = Batcher(window_s=3.0, max_size=2)
    batcher.add("web", "a", now=0.0)
    batcher.add("web", "b", now=0.5)
    batcher.add("web", "c", now=1.0)
    assert batcher.seconds_to_next(1.0) == 0.0
    assert batcher.due(1.0) == [("web", ["a", "b"])]
    assert batcher.seconds_to_next(1.0) == pytest.approx(3.0)  # "c" opened its own window at 1.0
    assert batcher.due(4.0) == [("web", ["c"])]


@pytest.mark.parametrize("adds, now, expected", [
    pytest.param([], 0.0, None, id="nothing open"),
    pytest.param([("web", 0.0)], 1.0, 2.0, id="one open batch"),
    pytest.param([("web", 0.0), ("api", 2.0)], 2.5, 0.5, id="earliest of several"),
    pytest.param([("web", 0.0)], 9.0, 0.0, id="overdue is zero, never negative"),
])
def test_seconds_to_next(adds, now, expected):
    batcher = Batcher(window_s=3.0, max_size=20)
    for key, at in adds:
        batcher.add(key, key, now=at)
    assert batcher.seconds_to_next(now) == expected


def test_separate_keys_batch_separately_each_on_its_own_window():
    batcher = Batcher(window_s=3.0, max_size=20)
    batcher.add(("web", LAUNCHING), "w1", now=0.0)
    batcher.add(("api", LAUNCHING), "a1", now=2.0)
    batcher.add(("web", TERMINATING), "t1", now=2.0)
    batcher.add(("web", LAUNCHING), "w2", now=2.5)
    assert batcher.due(3.0) == [(("web", LAUNCHING), ["w1", "w2"])]
    assert sorted(batcher.due(5.0)) == [(("api", LAUNCHING), ["a1"]), (("web", TERMINATING), ["t1"])]


def test_drain_hands_over_full_and_open_batches_and_empties_the_batcher():
    batcher = Batcher(window_s=3.0, max_size=2)
    for item in "abc":
        batcher.add("web", item, now=0.0)
    batcher.add("api", "x", now=0.0)
    assert len(batcher) == 4
    assert sorted(batcher.drain()) == [("api", ["x"]), ("web", ["a", "b"]), ("web", ["c"])]
    assert len(batcher) == 0 and batcher.drain() == [] and batcher.seconds_to_next(0.0) is None


# --- which build serves an action -----------------------------------------------------------------

@pytest.mark.parametrize("ref, act, expected", [
    pytest.param(f"{GROUP}:{INSTANCE}:tok-a", action("tok-a"), True, id="token match"),
    pytest.param(f"{GROUP}:{INSTANCE}:tok-b", action("tok-a"), False, id="token mismatch: an older action"),
    pytest.param(f"{GROUP}:{INSTANCE}:-", action("tok-a"), False, id="the - wildcard never matches a real token"),
    pytest.param(f"{GROUP}:{INSTANCE}:", action("tok-a"), False, id="empty token matches no token"),
    pytest.param(f"{GROUP}:{INSTANCE}", action("tok-a"), False, id="no token part is not a reference"),
    pytest.param(f"{GROUP}:{INSTANCE}:tok-x", action(None), False, id="reconciled action: not a tokened ref"),
    pytest.param(f"{GROUP}:{INSTANCE}:-", action(None), True, id="reconciled meets reconciled"),
    pytest.param(f"api-asg:{INSTANCE}:tok-a", action("tok-a"), False, id="other group"),
    pytest.param(f"api-asg:{INSTANCE}:-", action(None), False, id="other group, reconciled"),
    pytest.param(f"{GROUP}:i-0fffffffffffffff0:tok-a", action("tok-a"), False, id="other instance"),
    pytest.param(f"web%20asg%3Ablue:{INSTANCE}:tok-a", action("tok-a", group="web asg:blue"), True,
                 id="percent-encoded group"),
    pytest.param(f"prod:blue:{INSTANCE}:tok-a", action("tok-a", group="prod:blue"), True,
                 id="today's unencoded form with a colon in the group"),
    pytest.param(f"prod:blue:{INSTANCE}:tok-a", action("tok-a", group="blue"), False,
                 id="a group's name is never the tail of another's"),
    pytest.param("", action("tok-a"), False, id="empty ref"),
    pytest.param("garbage", action(None), False, id="not a ref"),
])
def test_covers(ref, act, expected):
    assert covers(ref, act) is expected


@pytest.mark.parametrize("parameters, expected", [
    pytest.param([{"name": ACTIONS_PARAM, "value": "g:i-1:t1 g:i-2:-"}], ("g:i-1:t1", "g:i-2:-"), id="two refs"),
    pytest.param([{"name": "SITE", "value": "web"}, {"name": ACTIONS_PARAM, "value": " g:i-1:t1\n"}],
                 ("g:i-1:t1",), id="among others, whitespace trimmed"),
    pytest.param([{"name": ACTIONS_PARAM, "value": ""}], (), id="empty: a full deploy"),
    pytest.param([{"name": ACTIONS_PARAM, "value": None}], (), id="null value"),
    pytest.param([{"name": ACTIONS_PARAM, "value": True}], (), id="not a string"),
    pytest.param([{}, {"name": "SITE", "value": "web"}], (), id="no such parameter"),
    pytest.param([], (), id="no parameters"),
    pytest.param(None, (), id="parameters missing"),
])
def test_refs_of(parameters, expected):
    assert refs_of(parameters) == expected


def through_jenkins(*actions: LifecycleAction) -> tuple[str, ...]:
    """References as a build's LIFECYCLE_ACTIONS parameter carries them and the consumer reads them back."""
    return refs_of([{"name": ACTIONS_PARAM, "value": " ".join(a.reference() for a in actions)}])


@pytest.mark.parametrize("act", [
    action("917070d0-a303-474b-a36c-a5e38a19de5e"),
    action(None),
    action("tok", group="prod.web_asg-2"),
    action("tok", transition=TERMINATING),
])
def test_every_action_finds_its_own_reference_through_jenkins(act):
    refs = through_jenkins(act, action("other", instance="i-0fffffffffffffff0"))
    assert [r for r in refs if covers(r, act)] == [act.reference()]


# AWS group names (botocore's XmlStringMaxLen255) take any printable character, space and colon
# included, which are the reference's own separators; and beyond ASCII, where Python's split()
# also splits on the Unicode line and paragraph separators.
AWS_NAME_CHARACTERS = "".join(chr(c) for c in range(32, 127)) + "é木\u00a0\u2028\u3000"


@pytest.mark.parametrize("group", ["web asg:blue", "a:b:c", "50%", "a%20b", " lead", "木 : %3A"])
def test_a_group_with_separators_in_its_name_finds_its_own_reference_through_jenkins(group):
    act = action("917070d0-a303-474b-a36c-a5e38a19de5e", group=group)
    assert [r for r in through_jenkins(act, action(None)) if covers(r, act)] == [act.reference()]


def test_any_aws_group_name_finds_its_own_reference_through_jenkins():
    rng = random.Random(7)
    for _ in range(200):
        group = "".join(rng.choice(AWS_NAME_CHARACTERS) for _ in range(rng.randint(1, 255)))
        act = action("917070d0-a303-474b-a36c-a5e38a19de5e", group=group)
        assert [r for r in through_jenkins(act, action(None)) if covers(r, act)] == [act.reference()], group


# --- which of the builds that name an action is the consumer's own ---------------------------------------

def found(user: str | None = "deployer", **changes) -> Found:
    params = {"SITE": "web", "INSTANCE_IDS": f"i-0aaaaaaaaaaaaaaa0,{INSTANCE}", "REVISION": "",
              ACTIONS_PARAM: f"{GROUP}:{INSTANCE}:tok-a", "DRY_RUN": "false", "SKIP_TESTS": "true", **changes}
    return Found(queue_id=7, build_number=None, refs=refs_of([{"name": ACTIONS_PARAM, "value": params[ACTIONS_PARAM]}]),
                 params=params, user=user)


@pytest.mark.parametrize("build, reason", [
    pytest.param(found(), None, id="exactly the consumer's build"),
    pytest.param(found(DRY_RUN=False), None, id="a boolean DRY_RUN parameter, false"),
    pytest.param(found(DRY_RUN="true"), "DRY_RUN is 'true'", id="dry run"),
    pytest.param(found(DRY_RUN=True), "DRY_RUN is 'true'", id="dry run, boolean parameter"),
    pytest.param(found(SITE="api"), "SITE is 'api'", id="another site"),
    pytest.param(found(REVISION="v0"), "REVISION is 'v0'", id="a pinned revision"),
    pytest.param(found(user="operator"), "queued by 'operator'", id="another user"),
    pytest.param(found(user=None), "queued by None", id="no user cause: a timer or an upstream job"),
])
def test_only_a_build_the_consumer_would_have_queued_is_its_own(build, reason):
    assert not_ours(build, "web", "deployer") == reason


@pytest.mark.parametrize("build, act, expected", [
    pytest.param(found(), action("tok-a"), True, id="named and deployed to"),
    pytest.param(found(INSTANCE_IDS=""), action("tok-a"), False, id="empty INSTANCE_IDS: a full deploy"),
    pytest.param(found(INSTANCE_IDS="i-0aaaaaaaaaaaaaaa0"), action("tok-a"), False, id="named, not deployed to"),
    pytest.param(found(INSTANCE_IDS=f" {INSTANCE} "), action("tok-a"), False, id="ids are compared whole"),
    pytest.param(found(), action("tok-b"), False, id="another action of the instance"),
    pytest.param(found(**{ACTIONS_PARAM: f"{GROUP}:{INSTANCE}:-"}), action("tok-a"), False, id="wildcard"),
    pytest.param(found(**{ACTIONS_PARAM: f"{GROUP}:{INSTANCE}:-"}), action(None), True, id="reconciled"),
])
def test_a_build_serves_an_action_it_names_and_deploys_to(build, act, expected):
    assert serves(build, act) is expected


# --- InFlight ---------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_first_admit_is_new_and_a_second_copy_is_a_duplicate_that_keeps_its_message():
    inflight = InFlight(FakeClock())
    status, tracked = inflight.admit(action(), message(1))
    assert status == "new" and tracked.received_at == 100.0
    again, same = inflight.admit(action(), message(2))
    assert again == "duplicate" and same is tracked
    assert [m.message_id for m in tracked.take_messages()] == ["m1", "m2"]
    assert inflight.covers(GROUP, INSTANCE, LAUNCHING) and len(inflight) == 1


def test_the_same_instance_terminating_is_another_action():
    inflight = InFlight(FakeClock())
    inflight.admit(action(), message(1))
    assert inflight.admit(action("tok-t", transition=TERMINATING), message(2))[0] == "new"
    assert len(inflight) == 2


def test_reconciled_action_learns_its_token_from_the_later_notification():
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action(None), None)
    assert tracked.messages == []
    status, same = inflight.admit(action("tok-a"), message(1))
    assert status == "duplicate" and same is tracked
    assert tracked.action.token == "tok-a" and [m.message_id for m in tracked.messages] == ["m1"]
    # ... and a later reconciliation pass does not forget it again.
    inflight.admit(action(None), None)
    assert tracked.action.token == "tok-a"


@pytest.mark.parametrize("finished_token, later, expected", [
    pytest.param("tok-a", action("tok-a"), "done", id="redelivered copy"),
    pytest.param("tok-a", action(None), "done", id="reconciliation after completion"),
    pytest.param("tok-a", action("tok-b"), "new", id="another action of the same instance"),
    pytest.param(None, action("tok-a"), "done", id="completed by instance id, copy arrives"),
])
def test_after_completion(finished_token, later, expected):
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action(finished_token), message(1))
    inflight.finish(tracked, completed=True)
    status, again = inflight.admit(later, message(2))
    assert status == expected
    assert (again is None) == (expected == "done")


def test_done_only_after_completion():
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action(), message(1))
    inflight.finish(tracked, completed=False)  # released, or completion failed: the next copy must deploy
    assert not inflight.covers(GROUP, INSTANCE, LAUNCHING) and len(inflight) == 0
    assert inflight.admit(action(), message(2))[0] == "new"


def test_finishing_a_stale_entry_leaves_the_current_one():
    inflight = InFlight(FakeClock())
    _, old = inflight.admit(action(), message(1))
    inflight.finish(old, completed=False)
    _, current = inflight.admit(action(), message(2))
    inflight.finish(old, completed=False)
    assert inflight.covers(GROUP, INSTANCE, LAUNCHING)
    inflight.finish(current, completed=False)
    assert len(inflight) == 0


def test_memory_of_finished_actions_is_bounded_oldest_first():
    inflight = InFlight(FakeClock())
    ids = [f"i-{n:017x}" for n in range(RECENTLY_DONE_MAX + 1)]
    for instance in ids:
        _, tracked = inflight.admit(action(f"t{instance}", instance=instance), None)
        inflight.finish(tracked, completed=True)
    assert len(inflight) == 0
    assert inflight.admit(action(f"t{ids[0]}", instance=ids[0]), None)[0] == "new"  # forgotten
    assert inflight.admit(action(f"t{ids[-1]}", instance=ids[-1]), None)[0] == "done"


# --- Jenkins credentials ------------------------------------------------------------------------------

ENV = {"JENKINS_USER": "env-user", "JENKINS_API_TOKEN": "env-token"}


def credentials_file(tmp_path, text: str) -> str:
    path = tmp_path / "jenkins-credentials"
    path.write_text(text)
    path.chmod(0o600)  # as the file must be (tests/test_jenkins_credentials.py)
    return str(path)


@pytest.mark.parametrize("environ, text, expected", [
    pytest.param(ENV, "file-user:file-token\n", ("env-user", "env-token"), id="environment wins"),
    pytest.param({}, "file-user:file-token\n", ("file-user", "file-token"), id="file"),
    pytest.param({"JENKINS_USER": "env-user"}, "file-user:file-token", ("file-user", "file-token"),
                 id="half an environment falls back to the file"),
    pytest.param({}, "  deployer:a:b\n\n", ("deployer", "a:b"), id="token may hold a colon"),
])
def test_read_credentials(tmp_path, environ, text, expected):
    assert read_credentials(environ, credentials_file(tmp_path, text)) == expected


def test_environment_alone_needs_no_file():
    assert read_credentials(ENV, None) == ("env-user", "env-token")


@pytest.mark.parametrize("text", ["s3cret-token\n", "", ":s3cret-token", "deployer:", "\n"])
def test_malformed_credentials_file_is_a_config_error_naming_the_file(tmp_path, text):
    path = credentials_file(tmp_path, text)
    with pytest.raises(ConfigError, match="expected one line user:api-token") as error:
        read_credentials({}, path)
    assert str(error.value).startswith(f"{path}:")
    assert "s3cret" not in str(error.value)  # never echo what may be a token


def test_missing_credentials_file_is_a_config_error_naming_the_file(tmp_path):
    path = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match="cannot read Jenkins credentials") as error:
        read_credentials({}, path)
    assert str(error.value).startswith(f"{path}:")


def test_no_credentials_at_all_is_a_config_error():
    with pytest.raises(ConfigError, match="JENKINS_USER and JENKINS_API_TOKEN"):
        read_credentials({}, None)


# --- back-off ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("attempt", [0, 1, 2, 5, 6, 10, 50, 1023])
def test_backoff_stays_within_full_jitter_bounds(attempt):
    random.seed(attempt)
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** attempt)
    samples = [backoff_s(attempt) for _ in range(500)]
    assert all(0 <= s <= ceiling for s in samples)
    assert max(samples) > ceiling / 2  # jittered over the range, not stuck at the bottom


# The receive loop's error count grows without bound: an SQS outage of ~1,024 failed
# receives (about 1.5 h at the 10 s cap) once killed the consumer.
def test_backoff_after_very_many_attempts_stays_capped():
    assert 0 <= backoff_s(1024) <= BACKOFF_MAX_S


# --- the lifecycle: section -----------------------------------------------------------------------------------

VALID = """\
sites:
  web:
    asg: web-asg
lifecycle:
  queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/hooks
  jenkins:
    url: http://jenkins.example.com/
    job: deploy
  groups:
    web-asg: web
"""


def load(text: str):
    return parse_config(load_text(textwrap.dedent(text), "deploy.yml"))


def test_valid_section_gets_the_defaults():
    lc = load(VALID).lifecycle
    assert lc.groups["web-asg"].site == "web" and lc.groups["web-asg"].job == "deploy"
    assert (lc.batch_window_s, lc.batch_max_instances, lc.heartbeat_fraction) == (3.0, 20, 0.4)
    assert lc.result_on["SUCCESS"] == "CONTINUE" and lc.result_on["FAILURE"] == "ABANDON"
    assert lc.region == "us-east-1" and lc.metrics_port is None and lc.jenkins.credentials_file is None


@pytest.mark.parametrize("text, where, message", [
    pytest.param(VALID.replace("  queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/hooks\n", ""),
                 "deploy.yml:4: lifecycle:", "queue_url is required", id="missing queue_url"),
    pytest.param(VALID.replace("    web-asg: web", "    web-asg: shop"),
                 "deploy.yml:10: lifecycle.groups.web-asg:", "site 'shop' is not one of the configured sites",
                 id="unknown group site"),
    pytest.param(VALID.replace("    web-asg: web", "    web-asg: {site: web, jobs: deploy}"),
                 "deploy.yml:10: lifecycle.groups.web-asg.jobs:", "unknown key", id="unknown key in a route"),
    pytest.param(VALID + "  result_on:\n    FAILURE: CONTINUE\n    SUCCESS: ABANDON\n",
                 "deploy.yml:13: lifecycle.result_on.SUCCESS:", "a successful deploy must CONTINUE",
                 id="result_on.SUCCESS=ABANDON refused"),
    pytest.param(VALID + "  result_on:\n    FAILURE: RETRY\n",
                 "deploy.yml:12: lifecycle.result_on.FAILURE:", "must be one of CONTINUE, ABANDON",
                 id="result not CONTINUE or ABANDON"),
    pytest.param(VALID + "  heartbeat_fraction: 0.95\n",
                 "deploy.yml:11: lifecycle.heartbeat_fraction:", "must be a number from 0.05 to 0.9",
                 id="heartbeat_fraction out of range"),
    pytest.param(VALID + "  heartbeat_fraction: '0.5'\n",
                 "deploy.yml:11: lifecycle.heartbeat_fraction:", "must be a number", id="number as a string"),
    pytest.param(VALID + "  batch_max_instances: true\n",
                 "deploy.yml:11: lifecycle.batch_max_instances:", "must be a number", id="boolean as a number"),
    pytest.param(VALID + "  batch_windows: 3\n",
                 "deploy.yml:11: lifecycle.batch_windows:", "unknown key", id="unknown key"),
    pytest.param(VALID.replace("    job: deploy\n", ""),
                 "deploy.yml:6: lifecycle.jenkins:", "jenkins.url and jenkins.job are required", id="no job"),
    pytest.param(VALID.replace("  groups:\n    web-asg: web\n", ""),
                 "deploy.yml:4: lifecycle.groups:", "map at least one Auto Scaling group", id="no groups"),
    pytest.param(VALID + "  warm_pool: skip\n",
                 "deploy.yml:11: lifecycle.warm_pool:", "must be one of continue, deploy", id="bad warm_pool"),
])
def test_lifecycle_errors_name_file_line_and_key(text, where, message):
    with pytest.raises(ConfigError) as error:
        load(text)
    assert str(error.value).startswith(where), str(error.value)
    assert message in str(error.value)


def test_a_scale_up_build_gets_exactly_the_parameters_doctor_checks_for():
    from helper.lifecycle.deployment import Deployment
    from helper.lifecycle.plan import Plan
    from helper.lifecycle.jenkins_client import BUILD_PARAMETERS

    assert tuple(Deployment(None, Plan(site="web", job="deploy", tracked=[])).parameters()) == BUILD_PARAMETERS


class _HooksClient:
    """The three Auto Scaling calls helper.lifecycle.autoscaling makes for a reconciled action."""

    def __init__(self):
        self.describes, self.calls = 0, []

    def describe_lifecycle_hooks(self, AutoScalingGroupName):
        self.describes += 1
        return {"LifecycleHooks": [{"LifecycleHookName": "on-launch", "HeartbeatTimeout": 600,
                                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"}]}

    def record_lifecycle_action_heartbeat(self, **target):
        self.calls.append(("heartbeat", target))

    def complete_lifecycle_action(self, **target):
        self.calls.append(("complete", target))


def test_a_reconciled_action_reads_its_groups_hooks_once():
    from helper.lifecycle.action import LAUNCHING, LifecycleAction
    from helper.lifecycle.autoscaling import AutoScaling

    client = _HooksClient()
    seam = AutoScaling(client)
    action = LifecycleAction("web-asg", "i-0123456789abcdef0", LAUNCHING)  # no token, no hook name
    assert seam.heartbeat_timeout_s(action) == 600
    for _ in range(3):
        seam.heartbeat(action)
    seam.complete(action, "CONTINUE")
    assert client.describes == 1
    assert client.calls[-1] == ("complete", {"AutoScalingGroupName": "web-asg", "LifecycleHookName": "on-launch",
                                             "InstanceId": "i-0123456789abcdef0", "LifecycleActionResult": "CONTINUE"})


# --- claims: another token for an action in flight waits for AWS's word ------------------------------

def test_a_copy_with_another_token_is_a_claim_of_its_own_not_a_takeover():
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action("tok-a"), message(1))
    status, same = inflight.admit(action("tok-forged"), message(2))
    assert status == "duplicate" and same is tracked
    assert tracked.action.token == "tok-a" and [m.message_id for m in tracked.messages] == ["m1"]
    (other,) = tracked.unjudged()
    assert other.action.token == "tok-forged"
    assert {m.message_id for m in tracked.take_messages()} == {"m1", "m2"}  # both kept invisible


def test_a_refused_claim_hands_the_action_to_the_next_and_a_confirmed_one_outranks_an_unchecked_one():
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action("tok-forged"), message(1))
    inflight.admit(action("tok-a"), message(2))
    forged, genuine = tracked.claims
    assert tracked.served() is forged  # first come, while neither is checked
    genuine.confirmed = True
    assert tracked.served() is genuine
    tracked.reject(forged)
    assert forged.messages == [] and not tracked.rejected
    tracked.reject(genuine)
    assert tracked.rejected


def test_a_confirmed_reconciled_action_stays_served_until_a_token_is_confirmed():
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action(None), None)
    tracked.served().confirmed = True  # AWS answered a heartbeat by instance id
    inflight.admit(action("tok-a"), message(1))
    assert tracked.action.token is None and [c.action.token for c in tracked.unjudged()] == ["tok-a"]
    tracked.claims[1].confirmed = True
    assert tracked.action.token == "tok-a" and [m.message_id for m in tracked.messages] == ["m1"]


# --- Auto Scaling's word on an action ----------------------------------------------------------------------

@pytest.mark.parametrize("seen, act, expected", [
    pytest.param(Seen(GROUP, "Pending:Wait"), action(), None, id="launching, waiting"),
    pytest.param(Seen(GROUP, "Warmed:Pending:Wait"), action(), None, id="launching into a warm pool"),
    pytest.param(Seen(GROUP, "Terminating:Wait"), action(transition=TERMINATING), None, id="terminating, waiting"),
    pytest.param(None, action(), "not_in_group", id="unknown to Auto Scaling"),
    pytest.param(Seen("api-asg", "Pending:Wait"), action(), "not_in_group", id="in another group"),
    pytest.param(Seen(GROUP, "InService"), action(), "not_waiting", id="stale: already in service"),
    pytest.param(Seen(GROUP, "Terminating:Wait"), action(), "not_waiting", id="waiting for the other transition"),
    pytest.param(Seen(GROUP, "Pending:Wait"), action(transition=TERMINATING), "not_waiting",
                 id="terminating message for a launching instance"),
])
def test_only_an_instance_waiting_in_its_group_for_this_transition_checks_out(seen, act, expected):
    assert mismatch(act, seen) == expected


# --- small parsers --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, job", [
    ("http://127.0.0.1:8080/job/deploy/", "deploy"),
    ("https://ci.example.com/jenkins/job/deploy/", "deploy"),
    ("http://localhost/job/apps/job/deploy/", "apps/deploy"),
    ("http://localhost/ci/job/apps/job/web%20deploy", "apps/web deploy"),
    ("http://localhost/", None),
    ("", None),
])
def test_a_jobs_name_is_read_from_its_url_whatever_root_precedes_it(url, job):
    assert job_of_url(url) == job


def test_the_dead_letter_queue_url_is_the_source_queues_with_the_dlqs_name():
    assert dead_letter_url("https://sqs.eu-west-1.amazonaws.com/111122223333/hooks",
                           "arn:aws:sqs:eu-west-1:111122223333:hooks-dlq") == \
        "https://sqs.eu-west-1.amazonaws.com/111122223333/hooks-dlq"
