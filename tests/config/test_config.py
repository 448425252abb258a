"""The configuration file: the 2014 tool's file loads unchanged; bad input names file:line:key."""

from __future__ import annotations

import logging
import textwrap

import pytest

from helper.config.document import Source, parse
from helper.config.yamlfile import load_text
from helper.errors import ConfigError
from tests.units import HELPER_BIN, MINIMAL_LIFECYCLE_YAML

ORIGINAL = """\
aws:
  access_key_id: 'YOUR_ACCESS_KEY_ID'
  secret_access_key: 'YOUR_SECRET_KEY'
path:
  ssh_config_file: '/var/lib/jenkins/.ssh/config'
  cap_config_file: '/var/lib/jenkins/cap_config.yml'
sites:
  my_project:
    elb: 'myproject.elb.amazonaws.com'
    region: 'us-east-1'
    keys: '~/.ssh/keys/myproject.pem'
"""


def load(text: str):
    return parse(load_text(textwrap.dedent(text), "deploy.yml"))


def test_original_file_loads_unchanged_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        config = load(ORIGINAL)
    (site,) = config.sites
    assert site.name == "my_project"
    assert site.source == Source("classic_elb", "myproject.elb.amazonaws.com")
    assert site.region == "us-east-1"
    assert site.identity_file == "~/.ssh/keys/myproject.pem"
    assert config.paths.ssh_config_file == "/var/lib/jenkins/.ssh/config"
    assert config.paths.cap_config_file == "/var/lib/jenkins/cap_config.yml"
    assert config.credentials.access_key_id == "YOUR_ACCESS_KEY_ID"
    assert "deprecated" in caplog.text and "deploy.yml:1" in caplog.text
    # The secret never appears in a log line or a repr.
    assert "YOUR_SECRET_KEY" not in caplog.text
    assert "YOUR_SECRET_KEY" not in repr(config)


def test_defaults_apply_to_every_site_and_sites_override_them():
    config = load("""\
        defaults: {user: deploy, port: 2222, region: eu-west-1, address: auto, roles: [app]}
        sites:
          a: {asg: a-group}
          b: {target_group: b-tg, user: ubuntu, region: us-west-2, bastion: jump.example.com}
          c: {tags: {Role: [web, api], Env: prod}}
    """)
    a, b, c = config.sites
    assert (a.user, a.port, a.region, a.address, a.roles) == ("deploy", 2222, "eu-west-1", "auto", ("app",))
    assert (b.user, b.region, b.proxy_jump) == ("ubuntu", "us-west-2", "jump.example.com")
    assert a.source == Source("auto_scaling_group", "a-group")
    assert c.source == Source("tags", {"Role": ("web", "api"), "Env": ("prod",)})
    assert config.credentials is None


def test_issue_13_keys_apply_per_site_and_from_defaults():
    config = load("""\
        defaults:
          transport: ssm
          alias_tag: Name
          filters: {exclude_tags: {Canary: "true"}}
        sites:
          a: {asg: a-group, roles_from_tag: Roles}
          b:
            elb: b
            transport: eice
            instance_connect_endpoint_id: eice-0123456789abcdef0
            address: ipv6
            filters:
              availability_zones: eu-west-1a
              tags: {Env: [prod, live]}
              exclude_instance_ids: [i-0123456789abcdef0]
          c: {elb: c, transport: ssh, bastion: jump.example.com}
    """)
    a, b, c = config.sites
    assert (a.transport, a.roles_from_tag, a.alias_tag) == ("ssm", "Roles", "Name")
    assert a.filters.exclude_tags == (("Canary", ("true",)),) and not a.filters.tags
    assert (b.transport, b.instance_connect_endpoint_id, b.address) == ("eice", "eice-0123456789abcdef0", "ipv6")
    assert b.filters.availability_zones == {"eu-west-1a"}
    assert b.filters.tags == (("Env", ("prod", "live")),)
    assert b.filters.exclude_instance_ids == {"i-0123456789abcdef0"}
    assert not b.filters.exclude_tags  # a site's filters replace the defaults' whole
    assert (c.transport, c.proxy_jump) == ("ssh", "jump.example.com")


BAD = [
    ("sites:\n  a:\n    elb: x\n    colour: red\n", "deploy.yml:4: sites.a.colour: unknown key"),
    ("sites:\n  a:\n    region: us-east-1\n", "deploy.yml:2: sites.a: site names no instance source"),
    ("sites:\n  a:\n    elb: x\n    asg: y\n", "deploy.yml:2: sites.a: site names 2 (elb, asg)"),
    ("sites:\n  a:\n    elb: x\n    port: 70000\n", "deploy.yml:4: sites.a.port: port must be an integer"),
    ("sites:\n  a:\n    elb: x\n    address: ipv4\n", "deploy.yml:4: sites.a.address: must be one of private, public, auto"),
    ("sites:\n  'a b':\n    elb: x\n", "deploy.yml:2: sites.a b: site name 'a b' must match"),
    ("sites:\n  a:\n    elb: x\n    roles: [a]\n", "deploy.yml:4: sites.a.roles: role 'a' has the name of a site"),
    ("defaults:\n  port: nope\nsites:\n  a: {elb: x}\n", "deploy.yml:2: defaults.port: port must be an integer"),
    ("aws:\n  access_key_id: AKIDEXAMPLE\nsites:\n  a: {elb: x}\n", "deploy.yml:1: aws: give both"),
    ("path:\n  ssh_config_mode: inline\nsites:\n  a: {elb: x}\n", "deploy.yml:2: path.ssh_config_mode: must be one of file, block"),
    ("sites:\n  a:\n    tags: {}\n", "deploy.yml:3: sites.a.tags: tags must name at least one tag"),
    ("sites: {}\n", "deploy.yml:1: sites: no sites configured"),
    ("sites:\n  a: [1, 2\n", "deploy.yml:3: not valid YAML"),
    ("", "deploy.yml: empty configuration"),
    ("sitez:\n  a: {elb: x}\n", "deploy.yml:1: sitez: unknown key"),
    # Issue 13's keys.
    ("sites:\n  a:\n    elb: x\n    transport: ssh-ng\n", "deploy.yml:4: sites.a.transport: must be one of ssh, ssm, eice"),
    ("sites:\n  a:\n    elb: x\n    transport: ssm\n    bastion: b.example.com\n",
     "deploy.yml:5: sites.a.bastion: transport ssm needs no jump host"),
    ("defaults:\n  proxy_jump: b\nsites:\n  a: {elb: x, transport: eice}\n",
     "deploy.yml:2: defaults.proxy_jump: transport eice needs no jump host"),
    ("sites:\n  a:\n    elb: x\n    instance_connect_endpoint_id: eice-0123456789abcdef0\n",
     "deploy.yml:4: sites.a.instance_connect_endpoint_id: needs transport: eice"),
    ("sites:\n  a:\n    elb: x\n    transport: eice\n    instance_connect_endpoint_id: 'eice-1;id'\n",
     "deploy.yml:5: sites.a.instance_connect_endpoint_id: 'eice-1;id' is not eice-<hex>"),
    ("sites:\n  a:\n    elb: x\n    filters: {zones: [a]}\n", "deploy.yml:4: sites.a.filters.zones: unknown key"),
    # Issue 24: a bad proxy_jump hop passed the config and failed only when an output was written.
    ("sites:\n  a:\n    elb: x\n    proxy_jump: 'h;id'\n",
     "deploy.yml:4: sites.a.proxy_jump: proxy_jump hop 'h;id' is not [user@]host[:port]"),
    ("sites:\n  a:\n    elb: x\n    proxy_jump: -oProxyCommand=id\n",
     "deploy.yml:4: sites.a.proxy_jump: proxy_jump hop '-oProxyCommand=id' is not"),
    ("defaults:\n  proxy_jump: user@h:99999\nsites:\n  a: {elb: x}\n",
     "deploy.yml:2: defaults.proxy_jump: proxy_jump hop 'user@h:99999' is not"),
    # Issue 24: roles that collide with a site's Ansible group were refused only when an Ansible output was written.
    ("sites:\n  web-app:\n    elb: x\n  b:\n    elb: y\n    roles: [web_app]\n",
     "deploy.yml:6: sites.b.roles: role 'web_app' would be Ansible group 'web_app', site 'web-app''s"),
    ("sites:\n  a:\n    elb: x\n    roles: [all]\n", "deploy.yml:4: sites.a.roles: role 'all' would be Ansible group"),
    ("sites:\n  web-app: {elb: x}\n  web_app: {elb: y}\n",
     "deploy.yml:3: sites.web_app: its Ansible group 'web_app' is site 'web-app''s"),
    # Issue 24: any text was a role ARN until the first AssumeRole.
    ("sites:\n  a:\n    elb: x\n    role_arn: deploy-role\n",
     "deploy.yml:4: sites.a.role_arn: must be an IAM role ARN"),
    # Issue 24: blamed on defaults.region, a key the user never wrote, with no line.
    ("aws: {region: [x]}\nsites:\n  a: {elb: x}\n", "deploy.yml:1: aws.region: must be a non-empty string"),
    ("sites:\n  a:\n    elb: x\n    filters: [a]\n", "deploy.yml:4: sites.a.filters: must be a mapping"),
    ("sites:\n  a:\n    elb: x\n    filters:\n      exclude_instance_ids: [i-0123456789abcdef0, web-1]\n",
     "deploy.yml:5: sites.a.filters.exclude_instance_ids: 'web-1' is not an instance id"),
    ("sites:\n  a:\n    elb: x\n    filters:\n      exclude_tags: {Canary: null}\n",
     "deploy.yml:5: sites.a.filters.exclude_tags.Canary: tag value must be text"),
    ("sites:\n  a:\n    elb: x\n    filters:\n      availability_zones: ['']\n",
     "deploy.yml:5: sites.a.filters.availability_zones.0: must be a non-empty string"),
    ("sites:\n  a:\n    elb: x\n    roles_from_tag: ''\n", "deploy.yml:4: sites.a.roles_from_tag: must be a non-empty string"),
    ("sites:\n  a:\n    elb: x\n    alias_tag: [Name]\n", "deploy.yml:4: sites.a.alias_tag: must be a non-empty string"),
    ("sites:\n  a:\n    elb: x\n    alias_tag: " + "N" * 129 + "\n",
     "deploy.yml:4: sites.a.alias_tag: a tag key has at most 128 characters"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m.split(": ", 1)[1][:40] for _, m in BAD])
def test_bad_config_names_file_line_and_key(text, message):
    with pytest.raises(ConfigError) as caught:
        parse(load_text(text, "deploy.yml"))
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_cli_reports_a_config_error_in_one_line_and_exits_2(tmp_path, capsys):
    from helper.cli import main

    path = tmp_path / "deploy.yml"
    path.write_text("sites:\n  web:\n    elb: x\n    keyz: /k.pem\n")
    assert main(["inventory", "-c", str(path), "--list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"aws-deploy-helper: {path}:4: sites.web.keyz: unknown key " + err.split("unknown key ", 1)[1]
    assert len(err.splitlines()) == 1


def test_missing_config_file_is_one_clear_line(tmp_path, capsys):
    from helper.cli import main

    assert main(["inventory", "-c", str(tmp_path / "nope.yml")]) == 2
    assert "nope.yml: cannot read: No such file or directory" in capsys.readouterr().err


@pytest.mark.parametrize("value, ok", [("v1.4.2", True), ("0123abc", True), ("release/2026-11", True),
                                       ("v1\n", False), ("v1; rm -rf /", False), ("-x", False), ("", False)])
def test_revisions_are_plain_refs(value, ok):
    from helper.deploys.revision import validate

    if ok:
        assert validate(value) == value
    else:
        with pytest.raises(ConfigError):
            validate(value)


def test_instance_ids_are_split_and_each_checked_whole():
    from helper.settings import _instance_ids

    assert _instance_ids(["i-0123456789abcdef0, i-0123456789abcdef1"]) == {"i-0123456789abcdef0",
                                                                          "i-0123456789abcdef1"}
    with pytest.raises(ConfigError):
        _instance_ids(["i-0123456789abcdef0x"])


# --- issue 9, items 15-18: hostile or careless files end in one line, never a traceback ------------

import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

# A refused file takes well under a second; this only turns a hang (a FIFO) into a failure.
CLI_TIMEOUT_S = 30
# Enough for the interpreter, boto3 and PyYAML; an alias bomb expanding toward 3 GB dies
# of MemoryError at this bound instead of swapping the test machine.
CLI_ADDRESS_SPACE_BYTES = 2 * 1024**3

# 409 bytes that PyYAML's composer would walk as 9**9 nodes (the "billion laughs" shape).
ALIAS_BOMB = "\n".join(
    [f'l0: &l0 [{",".join(["lol"] * 9)}]']
    + [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    + ["sites: *l8", ""]
)


def _limited_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CLI_ADDRESS_SPACE_BYTES, CLI_ADDRESS_SPACE_BYTES))


def run_cli(config: Path | str) -> subprocess.CompletedProcess:
    # No AWS is configured: each of these files must be refused before anything is asked of AWS.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    try:
        return subprocess.run(
            [str(HELPER_BIN), "inventory", "-c", str(config), "--list"], capture_output=True,
            timeout=CLI_TIMEOUT_S, env=env, preexec_fn=_limited_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the helper hung reading {config}")


def _text(body: str):
    return lambda tmp_path: _written(tmp_path, body.encode("utf-8", "surrogatepass"))


def _written(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "deploy.yml"
    path.write_bytes(data)
    return path


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "deploy.yml"
    os.mkfifo(path)
    return path


# name -> (make the file, what the one line must say after "<file>")
HOSTILE_FILES = {
    "alias bomb": (_text(ALIAS_BOMB), ":1: anchors (&name) and aliases (*name) are not supported"),
    "deep nesting": (_text("sites: " + "[" * 20_000), ":1: nested deeper than"),
    "NUL byte": (_text("sites:\n  web: {elb: a\0}\n"), ":2: control character U+0000"),
    "ESC byte": (_text("sites:\n  web: {elb: a\x1b}\n"), ":2: control character U+001B"),
    "escaped ESC": (_text('sites:\n  web: {elb: "a\\e"}\n'), ":2: control character U+001B"),
    "lone surrogate in user": (_text('sites:\n  web: {elb: a, user: "\\udc80"}\n'), ":2: lone surrogate U+DC80"),
    "not UTF-8": (lambda p: _written(p, b"sites:\n  web: {elb: caf\xe9}\n"), ":2: not UTF-8 text"),
    "/dev/zero": (lambda p: Path("/dev/zero"), ": is a character device, not a regular file"),
    "FIFO": (_fifo, ": is a FIFO, not a regular file"),
    "oversized": (_text("sites: {web: {elb: a}}\n" + "#" * (300 * 1024) + "\n"), ": larger than 256 KiB"),
    "duplicate site": (_text("sites:\n  web: {elb: a}\n  web: {elb: b}\n"), ":3: duplicate key 'web'"),
    "number too long": (_text("sites:\n  web: {elb: a, port: " + "1" * 5000 + "}\n"), ":2: cannot read '1111"),
    "impossible date": (_text("sites:\n  web: {elb: a, user: 2024-13-45}\n"), ":2: cannot read '2024-13-45'"),
}


@pytest.mark.parametrize("name", list(HOSTILE_FILES))
def test_hostile_config_file_is_one_line_and_exit_2(tmp_path, name):
    make, expected = HOSTILE_FILES[name]
    path = make(tmp_path)
    result = run_cli(path)
    err = result.stderr.decode("utf-8", "backslashreplace")
    assert "Traceback" not in err, err[-2000:]
    assert result.returncode == 2, err[-2000:]
    assert len(err.splitlines()) == 1, err[-2000:]
    assert err.startswith(f"aws-deploy-helper: {path}{expected}"), err


def test_anchors_and_aliases_are_refused_at_the_anchor():
    # A small bomb: the full one is run through the CLI above, under a memory limit.
    with pytest.raises(ConfigError, match=r"^deploy.yml:1: anchors \(&name\) and aliases \(\*name\) are not"):
        load_text(ALIAS_BOMB.split("l3:")[0] + "sites: *l2\n", "deploy.yml")
    with pytest.raises(ConfigError, match=r"^deploy.yml:3: anchors"):
        load_text("sites:\n  a: {elb: x}\n  b: *a\n", "deploy.yml")


@pytest.mark.parametrize("text, message", [
    ("sites:\n  web: {elb: a}\n  web: {elb: b}\n", "deploy.yml:3: duplicate key 'web' in sites (first on line 2)"),
    ("sites:\n  web:\n    elb: a\n    elb: b\n", "deploy.yml:4: duplicate key 'elb' in sites.web (first on line 3)"),
    ("sites:\n  web: {elb: a}\nsites:\n  api: {elb: b}\n", "deploy.yml:3: duplicate key 'sites' (first on line 1)"),
    # Keys are compared as written: YAML's `"web"` and `web` are one key.
    ('sites:\n  web: {elb: a}\n  "web": {elb: b}\n', "deploy.yml:3: duplicate key 'web' in sites"),
])
def test_duplicate_keys_are_refused_with_their_line(text, message):
    with pytest.raises(ConfigError) as caught:
        load_text(text, "deploy.yml")
    assert str(caught.value).startswith(message), str(caught.value)


def test_merge_keys_are_refused_like_aliases():
    with pytest.raises(ConfigError, match=r"^deploy.yml:2: merge keys \(<<\) are not supported"):
        load_text("sites:\n  <<: {web: {elb: a}}\n", "deploy.yml")


def test_tag_and_string_values_keep_what_the_user_wrote():
    config = load("""\
        defaults: {region: eu-west-1, user: yes}
        sites:
          a:
            tags: {Enabled: true, Build: 0123, Version: 1.10, Day: 2024-01-01, Hex: 0x1F, Env: [prod, no]}
          2024: {asg: '2024'}
        lifecycle:
          queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/hooks
          jenkins: {url: 'http://jenkins:8080/', job: deploy}
          groups: {year-asg: 2024, other-asg: {site: 2024}}
    """)
    a, year = config.sites
    assert {g.site for g in config.lifecycle.groups.values()} == {"2024"}
    assert a.source.value == {
        "Enabled": ("true",), "Build": ("0123",), "Version": ("1.10",), "Day": ("2024-01-01",),
        "Hex": ("0x1F",), "Env": ("prod", "no"),
    }
    assert a.user == "yes"
    assert year.name == "2024"


@pytest.mark.parametrize("text, message", [
    ("sites:\n  a:\n    tags: {Env: null}\n", "deploy.yml:3: sites.a.tags.Env: tag value must be text"),
    ("sites:\n  a:\n    tags: {Env: {x: y}}\n", "deploy.yml:3: sites.a.tags.Env: tag value must be text"),
])
def test_tag_values_that_are_not_text_are_refused(text, message):
    with pytest.raises(ConfigError) as caught:
        parse(load_text(text, "deploy.yml"))
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize("user", ["deploy", "ec2-user", "_svc", "Administrator", "first.last", "a" * 32])
def test_login_names_are_accepted_as_user(user):
    (site,) = load(f"sites:\n  a: {{elb: x, user: '{user}'}}\n").sites
    assert site.user == user


@pytest.mark.parametrize("user", [
    "{{ lookup('pipe', 'touch /tmp/x') }}", "-oProxyCommand=id", "deploy user", "1000x", "a" * 33,
    "root%h", "deploy$", "o'brien", "user@example.com",
])
def test_user_that_is_not_a_login_name_is_refused_with_its_line(user):
    escaped = user.replace("'", "''")
    with pytest.raises(ConfigError) as caught:
        load(f"sites:\n  a:\n    elb: x\n    user: '{escaped}'\n")
    assert str(caught.value).startswith("deploy.yml:4: sites.a.user: "), str(caught.value)
    assert "login name" in str(caught.value)


# --- lifecycle.breaker and lifecycle.alerts (issue 11) -------------------------------------------

LIFECYCLE = MINIMAL_LIFECYCLE_YAML


def test_breaker_and_alerts_default_to_three_failures_hold_and_no_target():
    lc = parse(load_text(LIFECYCLE, "deploy.yml")).lifecycle
    assert (lc.breaker.failures, lc.breaker.on_open, lc.breaker.margin_s) == (3, "hold", 1800.0)
    assert (lc.alerts.sns_topic_arn, lc.alerts.webhook_url) == (None, None)


def test_breaker_and_alerts_are_read():
    lc = parse(load_text(LIFECYCLE + """\
  breaker: {failures: 5, on_open: abandon, margin_s: 600}
  alerts:
    sns_topic_arn: arn:aws:sns:us-east-1:123456789012:deploys
    webhook_url: https://hooks.slack.com/services/T0/B0/xyz
""", "deploy.yml")).lifecycle
    assert (lc.breaker.failures, lc.breaker.on_open, lc.breaker.margin_s) == (5, "abandon", 600)
    assert lc.alerts.sns_topic_arn.endswith(":deploys") and lc.alerts.webhook_url.startswith("https://")


@pytest.mark.parametrize("extra, message", [
    ("  breaker: {failures: 0}\n", "deploy.yml:7: lifecycle.breaker.failures: "),
    ("  breaker: {on_open: retry}\n", "deploy.yml:7: lifecycle.breaker.on_open: must be one of hold, abandon"),
    ("  breaker: {margin_s: 0}\n", "deploy.yml:7: lifecycle.breaker.margin_s: "),
    ("  breaker: {count: 3}\n", "deploy.yml:7: lifecycle.breaker.count: unknown key"),
    ("  alerts: {sns_topic_arn: deploys}\n", "deploy.yml:7: lifecycle.alerts.sns_topic_arn: must be an SNS topic ARN"),
    ("  alerts: {webhook_url: 'http://hooks.example.com/x'}\n",
     "deploy.yml:7: lifecycle.alerts.webhook_url: lifecycle.alerts.webhook_url must be https://"),
    ("  alerts: {webhook_url: 'https://u:p@hooks.example.com/x'}\n", "deploy.yml:7: lifecycle.alerts.webhook_url: "),
])
def test_bad_breaker_or_alerts_names_file_line_and_key(extra, message):
    with pytest.raises(ConfigError) as caught:
        parse(load_text(LIFECYCLE + extra, "deploy.yml"))
    assert str(caught.value).startswith(message), str(caught.value)
    assert "p@" not in str(caught.value), "the webhook URL (a secret) is never echoed"


@pytest.mark.parametrize("value", [",", " ", " , ,", "\t\n", ""])
def test_instance_ids_that_name_no_instance_are_refused(value):
    """Issue 19 item 9: `,` meant every instance here and a canary in the Jenkinsfile."""
    from helper.settings import _instance_ids

    with pytest.raises(ConfigError, match="names no instance"):
        _instance_ids([value])
