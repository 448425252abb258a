"""The configuration file: the 2014 tool's file loads unchanged; bad input names file:line:key."""

from __future__ import annotations

import logging
import textwrap

import pytest

from helper.config import Source, parse
from helper.errors import ConfigError
from helper.yamlfile import load_text

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


BAD = [
    ("sites:\n  a:\n    elb: x\n    colour: red\n", "deploy.yml:4: sites.a.colour: unknown key"),
    ("sites:\n  a:\n    region: us-east-1\n", "deploy.yml:2: sites.a: site names no instance source"),
    ("sites:\n  a:\n    elb: x\n    asg: y\n", "deploy.yml:2: sites.a: site names 2 (elb, asg)"),
    ("sites:\n  a:\n    elb: x\n    port: 70000\n", "deploy.yml:4: sites.a.port: port must be an integer"),
    ("sites:\n  a:\n    elb: x\n    address: ipv6\n", "deploy.yml:4: sites.a.address: must be one of private, public, auto"),
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
    from helper.revision import validate

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
