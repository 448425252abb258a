"""helper.consumer.jenkins_client's pure parts, as tables: which build serves an action, which of the
builds that name an action is the consumer's own, and a job's name read from its URL. No servers."""

from __future__ import annotations

import random

import pytest

from helper.consumer.action import TERMINATING, LifecycleAction
from helper.consumer.jenkins_client import ACTIONS_PARAM, Found, covers, job_of_url, not_ours, refs_of, serves
from tests.units import GROUP, INSTANCE, action

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
    # Issue 19 item 20: after a SIGKILL the sweep finds the instance before its message comes back.
    pytest.param(found(), action(None), True, id="reconciled meets the queued build of its notification"),
    pytest.param(Found(queue_id=7, build_number=4, building=True, refs=found().refs, params=found().params),
                 action(None), True, id="reconciled meets the running build of its notification"),
    pytest.param(Found(queue_id=7, build_number=4, result="SUCCESS", refs=found().refs, params=found().params),
                 action(None), False, id="never a finished build: it may be an earlier action's"),
    pytest.param(found(), action(None, instance="i-0fffffffffffffff0"), False, id="reconciled, other instance"),
    pytest.param(found(**{ACTIONS_PARAM: f"api-asg:{INSTANCE}:tok-a"}), action(None), False,
                 id="reconciled, same instance id in another group"),
])
def test_a_build_serves_an_action_it_names_and_deploys_to(build, act, expected):
    assert serves(build, act) is expected


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


def test_a_jenkins_url_with_userinfo_never_reaches_an_alert_or_a_breaker_tag():
    """Issue 19 item 5: a Jenkins reached (and calling itself) by a URL with `user:token@` in it.
    The config refuses that URL; whatever gets one past it, the build URL we publish, the alert
    texts (SNS and webhook) and the breaker's reason tag carry no credential, and neither does a
    URL Jenkins itself answers (api/json `url`) when an alert names it."""
    import time

    from helper.breaker import alerts
    from helper.breaker import state as breaker
    from helper.consumer.jenkins_client import JenkinsJobs
    from helper.sandbox.jenkins.emulator import JenkinsEmulator

    secret = "s3cretT0ken"
    with JenkinsEmulator(users={}, api_tokens={"deployer": secret}) as emulator:
        credentialed = emulator.url.replace("http://", f"http://deployer:{secret}@")
        emulator.set_root_url(credentialed)  # Jenkins answers its URLs with the userinfo too
        emulator.add_job("deploy", [{"name": "SITE"}])
        jobs = JenkinsJobs.connect(credentialed, "deployer", secret, 10)
        queue_id = jobs.queue_build("deploy", {"SITE": "web"})
        deadline = time.monotonic() + 10
        while (number := jobs.progress("deploy", queue_id, None).build_number) is None:
            assert time.monotonic() < deadline, "the build never started"
            time.sleep(0.02)
        answered = jobs._server.get_build_info("deploy", number)["url"]
    assert secret in answered, "the emulator answers as the Jenkins of the attack"
    published = jobs.build_url("deploy", number)
    assert published == f"{emulator.url}job/deploy/{number}/"
    state, _ = breaker.on_result(breaker.CLOSED, "v1", False, 1, detail=f"FAILURE {published}")
    texts = [breaker.encode_tags("web", state)[breaker.REASON_TAG_PREFIX + "web"]]
    for url in (published, answered):
        for alert in (alerts.abandoned("web", "web-asg", "i-0abc", "FAILURE", url),
                      alerts.breaker_opened("web", "v1", 1, f"last: FAILURE {url}")):
            texts += [alert.plain(), alert.slack()]
    assert all(secret not in text and "deployer" not in text for text in texts), texts
    assert alerts.redact_userinfo("x https://a@b:pw@ci:8443/job/x@y/ y") == "x https://ci:8443/job/x@y/ y"
