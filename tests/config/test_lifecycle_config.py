"""helper.config.lifecycle: the lifecycle: section's defaults, and its errors naming file, line and key."""

from __future__ import annotations

import textwrap

import pytest

from helper.config.document import parse as parse_config
from helper.config.yamlfile import load_text
from helper.errors import ConfigError

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


def test_every_plain_key_defaults_to_the_dataclass_and_is_in_the_key_list():
    """Defaults are written once, on LifecycleConfig; the parser's field table reads them (issue 20)."""
    from dataclasses import fields as dataclass_fields

    from helper.config.lifecycle import SCALARS, SECTION_KEYS, LifecycleConfig

    lc = load(VALID).lifecycle
    defaults = {f.name: f.default for f in dataclass_fields(LifecycleConfig)}
    assert {name: getattr(lc, name) for name in SCALARS} == {name: defaults[name] for name in SCALARS}
    assert set(SCALARS) <= set(SECTION_KEYS)


@pytest.mark.parametrize("line, where", [
    ("  batch_window_s:\n", "deploy.yml:11: lifecycle.batch_window_s: must be a number"),
    ("  hook_name:\n", "deploy.yml:11: lifecycle.hook_name: must be a non-empty string"),
    ("  hook_default_result:\n", "deploy.yml:11: lifecycle.hook_default_result: must be one of CONTINUE, ABANDON"),
], ids=["number", "hook name", "result"])
def test_a_key_written_empty_is_refused_unless_its_default_is_none(line, where):
    with pytest.raises(ConfigError) as caught:
        load(VALID + line)
    assert str(caught.value).startswith(where)
    assert load(VALID + "  metrics_port:\n").lifecycle.metrics_port is None


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
                 "deploy.yml:11: lifecycle.batch_max_instances:", "must be a whole number", id="boolean as a number"),
    pytest.param(VALID + "  batch_windows: 3\n",
                 "deploy.yml:11: lifecycle.batch_windows:", "unknown key", id="unknown key"),
    pytest.param(VALID.replace("    job: deploy\n", ""),
                 "deploy.yml:6: lifecycle.jenkins:", "jenkins.url and jenkins.job are required", id="no job"),
    pytest.param(VALID.replace("  groups:\n    web-asg: web\n", ""),
                 "deploy.yml:4: lifecycle.groups:", "map at least one Auto Scaling group", id="no groups"),
    pytest.param(VALID + "  warm_pool: skip\n",
                 "deploy.yml:11: lifecycle.warm_pool:", "must be one of continue, deploy", id="bad warm_pool"),
    # Issue 19 item 5: a token in the URL would be published in breaker tags and alerts.
    pytest.param(VALID.replace("http://jenkins.example.com/", "https://deployer:11aa22bb@jenkins.example.com/"),
                 "deploy.yml:7: lifecycle.jenkins.url:", "must not hold user:token@", id="userinfo in jenkins.url"),
    pytest.param(VALID.replace("http://jenkins.example.com/", "https://:11aa22bb@jenkins.example.com/"),
                 "deploy.yml:7: lifecycle.jenkins.url:", "must not hold user:token@", id="password only"),
    # Issue 24: whole numbers were silently cut (2.5 -> 2), and any text was a queue URL.
    pytest.param(VALID + "  batch_max_instances: 2.5\n", "deploy.yml:11: lifecycle.batch_max_instances:",
                 "must be a whole number from 1 to 1000, not 2.5", id="batch_max_instances 2.5"),
    pytest.param(VALID + "  breaker: {failures: 2.5}\n", "deploy.yml:11: lifecycle.breaker.failures:",
                 "must be a whole number", id="breaker failures 2.5"),
    pytest.param(VALID.replace("https://sqs.us-east-1.amazonaws.com/123456789012/hooks", "not-a-url"),
                 "deploy.yml:5: lifecycle.queue_url:", "must be an SQS queue URL", id="queue_url not a URL"),
    pytest.param(VALID.replace("https://sqs.us-east-1.amazonaws.com/123456789012/hooks",
                               "https://sqs.us-east-1.amazonaws.com/hooks"),
                 "deploy.yml:5: lifecycle.queue_url:", "must be an SQS queue URL", id="queue_url without account"),
    # Issue 24: names that AWS would refuse were accepted, and failed at the first AWS call.
    pytest.param(VALID + "  hook_name: 'on launch;x'\n", "deploy.yml:11: lifecycle.hook_name:",
                 "must be a hook name", id="bad hook_name"),
    pytest.param(VALID + "  hook_role_name: 'role name'\n", "deploy.yml:11: lifecycle.hook_role_name:",
                 "must be an IAM role name", id="bad hook_role_name"),
    # Issue 24: no scheme loaded, then consume and doctor crashed in requests.
    pytest.param(VALID.replace("http://jenkins.example.com/", "jenkins.example.com"),
                 "deploy.yml:7: lifecycle.jenkins.url:", "must start with http:// or https://", id="no scheme"),
    pytest.param(VALID.replace("http://jenkins.example.com/", "ftp://jenkins.example.com/"),
                 "deploy.yml:7: lifecycle.jenkins.url:", "must start with http:// or https://", id="other scheme"),
    pytest.param(VALID.replace("http://jenkins.example.com/", "http://jenkins.example.com:99999/"),
                 "deploy.yml:7: lifecycle.jenkins.url:", "is not a URL", id="bad port"),
    pytest.param(VALID.replace("http://jenkins.example.com/", "http:///job/x"),
                 "deploy.yml:7: lifecycle.jenkins.url:", "has no host", id="no host"),
])
def test_lifecycle_errors_name_file_line_and_key(text, where, message):
    with pytest.raises(ConfigError) as error:
        load(text)
    assert str(error.value).startswith(where), str(error.value)
    assert message in str(error.value)


def test_the_token_in_a_jenkins_url_never_reaches_what_we_publish():
    """Issue 19 item 5: whatever URL the client was given, build URLs (breaker tags, alerts) carry no userinfo."""
    from helper.urls import redact_userinfo as without_userinfo

    assert without_userinfo("https://deployer:11aa22bb@jenkins.example.com/job/deploy/7/") == \
        "https://jenkins.example.com/job/deploy/7/"
    assert without_userinfo("https://a@b:pw@jenkins.example.com:8443/x") == "https://jenkins.example.com:8443/x"
    assert without_userinfo("https://jenkins.example.com/job/deploy/7/") == "https://jenkins.example.com/job/deploy/7/"


def test_whole_numbers_written_as_floats_are_taken():
    lc = load(VALID + "  batch_max_instances: 20.0\n  visibility_timeout_s: 300\n").lifecycle
    assert (lc.batch_max_instances, lc.visibility_timeout_s) == (20, 300)
    assert isinstance(lc.batch_max_instances, int)


@pytest.mark.parametrize("extra, message", [
    ("  reconcile_interval_s: 60\n",
     "deploy.yml:11: lifecycle.reconcile_interval_s: reconcile_interval_s (60 s) must be at least "
     "visibility_timeout_s (120 s): a shorter sweep can redeploy, after a restart, an instance whose "
     "notification is still invisible"),
    ("  visibility_timeout_s: 600\n",
     "deploy.yml:11: lifecycle.visibility_timeout_s: reconcile_interval_s (300 s) must be at least "
     "visibility_timeout_s (600 s)"),
])
def test_a_reconcile_interval_shorter_than_the_visibility_timeout_is_refused(extra, message):
    """Issue 19 item 20: after a SIGKILL, a sweep before the notification came back queued a second build."""
    with pytest.raises(ConfigError) as caught:
        load(VALID + extra)
    assert str(caught.value).startswith(message), str(caught.value)


def test_the_defaults_and_an_equal_reconcile_interval_load():
    assert load(VALID).lifecycle.reconcile_interval_s >= load(VALID).lifecycle.visibility_timeout_s
    lc = load(VALID + "  visibility_timeout_s: 30\n  reconcile_interval_s: 30\n").lifecycle
    assert (lc.visibility_timeout_s, lc.reconcile_interval_s) == (30, 30.0)
