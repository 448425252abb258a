"""The real programs that read our files: OpenSSH, Ansible, Capistrano and net-ssh.

A missing program skips its tests, except on CI (CI=true), where it fails them:
there a skip would hide that the files were never checked by their readers.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helper.files.write import merge_managed_block
from helper.inventory.model import Host, Instance, SiteInventory
from helper.inventory.render import render_ansible, render_capistrano, render_ssh_config

READERS_DIR = Path(__file__).parent / "readers"
# Generous: each reader starts in well under a second; this only stops a hang.
READER_TIMEOUT_S = 60
CAP_STAGE = "inventory"

FULL = Host(
    site="web-prod",
    alias="web-prod-i-0aaa",
    address="10.0.0.1",
    instance=Instance("i-0aaa", "running", private_ip="10.0.0.1", availability_zone="eu-west-1a"),
    status="InService",
    user="deploy",
    port=2222,
    identity_file="/srv/deploy keys/id_ed25519",
    proxy_jump="ops@bastion.example.com:2200",
    roles=("web", "app"),
)
MINIMAL = Host(
    site="web-prod",
    alias="web-prod-i-0bbb",
    address="10.0.0.2",
    instance=Instance("i-0bbb", "running"),
    status="healthy",
)
API = Host(
    site="api",
    alias="api-i-0ccc",
    address="ip-10-0-1-3.internal",
    instance=Instance("i-0ccc", "running"),
    status="InService",
    user="api",
    roles=("app",),
)
SITES = [
    SiteInventory("web-prod", (FULL, MINIMAL)),
    SiteInventory("api", (API,)),
    SiteInventory("batch.jobs"),
]


def need(program: str, probe: list[str] | None = None) -> str:
    """The program's path; skip (fail on CI) when it is missing or the probe fails."""
    path = shutil.which(program)
    ok = path is not None and (
        probe is None or subprocess.run(probe, capture_output=True).returncode == 0
    )
    if not ok:
        reason = f"{program} is not installed"
        if probe:
            reason += f" or `{shlex.join(probe)}` fails"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run every reader")
        pytest.skip(reason)
    return path


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=READER_TIMEOUT_S, **kwargs
    )
    assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stderr}"
    return result


@pytest.fixture
def known_hosts(tmp_path) -> str:
    # Two spaces (ssh -G joins a split value with one), # and ' fail the tests
    # unless each writer quotes the path for its reader.
    return str(tmp_path / "known  hosts #1 it's" / "known_hosts")


# --- OpenSSH ----------------------------------------------------------------------


def ssh_resolve(config: Path | str, alias: str, *options: str) -> dict[str, str]:
    """`ssh -G` for alias: the effective options, keyword -> rest of its first line."""
    output = run([need("ssh"), "-G", "-F", str(config), *options, alias]).stdout
    resolved: dict[str, str] = {}
    for line in output.splitlines():
        keyword, _, value = line.partition(" ")
        resolved.setdefault(keyword, value)
    return resolved


def expected_ssh(host: Host, known_hosts: str) -> dict[str, str]:
    expected = {
        "hostname": host.address,
        "hostkeyalias": host.alias,
        "stricthostkeychecking": "accept-new",
        "userknownhostsfile": known_hosts,
        "hashknownhosts": "no",
        "port": str(host.port or 22),
    }
    if host.user:
        expected["user"] = host.user
    if host.identity_file:
        expected["identityfile"] = host.identity_file
        expected["identitiesonly"] = "yes"
    if host.proxy_jump:
        expected["proxyjump"] = host.proxy_jump
    return expected


@pytest.mark.parametrize("host", [FULL, MINIMAL, API], ids=lambda h: h.alias)
def test_ssh_resolves_each_alias_to_our_values(tmp_path, known_hosts, host):
    config = tmp_path / "ssh_config"
    config.write_text(render_ssh_config(SITES, known_hosts))
    resolved = ssh_resolve(config, host.alias)
    expected = expected_ssh(host, known_hosts)
    assert {key: resolved.get(key) for key in expected} == expected
    if not host.proxy_jump:
        assert "proxyjump" not in resolved


USER_CONFIG = """\
# my own settings
ServerAliveInterval 30
User alice

Host github.com
    User git
    IdentityFile ~/.ssh/github

Host *.internal
    Port 2200
"""


@pytest.mark.parametrize("runs", [1, 2], ids=["inserted", "replaced"])
def test_managed_block_keeps_the_users_hosts_and_globals(tmp_path, known_hosts, runs):
    before = tmp_path / "before"
    before.write_text(USER_CONFIG)
    after = tmp_path / "after"
    text = USER_CONFIG
    for _ in range(runs):
        text = merge_managed_block(text, render_ssh_config(SITES, known_hosts))
    after.write_text(text)

    for user_host in ["github.com", "box.internal", "example.org"]:
        assert ssh_resolve(after, user_host) == ssh_resolve(before, user_host)
    ours = ssh_resolve(after, FULL.alias)
    expected = expected_ssh(FULL, known_hosts)
    assert {key: ours.get(key) for key in expected} == expected
    # The user's global options still reach our hosts for what we leave unset.
    assert ours["serveraliveinterval"] == "30"
    assert ssh_resolve(after, MINIMAL.alias)["user"] == "alice"
    assert ssh_resolve(after, API.alias)["port"] == "22"


# --- Ansible ----------------------------------------------------------------------


def ansible_program(name: str) -> str:
    # The venv's program, when pytest runs from an unactivated venv.
    beside_python = Path(sys.executable).parent / name
    return need(str(beside_python) if beside_python.exists() else name)


def ansible_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        # Only the YAML plugin, and a parse failure fails: no silent fallback to INI.
        "ANSIBLE_INVENTORY_ENABLED": "yaml",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
    }


def unwrap_unsafe(value):
    """ansible-inventory --list shows a `!unsafe` value as {"__ansible_unsafe": value}."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    return value


def ansible_list(tmp_path: Path, inventory_text: str) -> tuple[dict, str]:
    program = ansible_program("ansible-inventory")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(inventory_text)
    result = run([program, "-i", str(inventory), "--list"], env=ansible_env(tmp_path))
    listing = json.loads(result.stdout)
    for hostvars in listing["_meta"]["hostvars"].values():
        hostvars.update({name: unwrap_unsafe(value) for name, value in hostvars.items()})
    return listing, result.stderr


def ansible_raw_hostvars(tmp_path: Path, inventory_text: str) -> dict:
    """`--list` hostvars as Ansible shows them, with their `__ansible_unsafe` wrappers."""
    inventory = tmp_path / "raw-inventory.yml"
    inventory.write_text(inventory_text)
    result = run([ansible_program("ansible-inventory"), "-i", str(inventory), "--list"], env=ansible_env(tmp_path))
    return json.loads(result.stdout)["_meta"]["hostvars"]


def test_ansible_reads_groups_hosts_and_hostvars(tmp_path, known_hosts):
    listing, warnings = ansible_list(tmp_path, render_ansible(SITES, known_hosts))
    assert "invalid characters" not in warnings.lower()
    assert set(listing["all"]["children"]) >= {"web_prod", "api", "batch_jobs", "web", "app"}
    assert listing["web_prod"]["hosts"] == [FULL.alias, MINIMAL.alias]
    assert listing["api"]["hosts"] == [API.alias]
    assert "hosts" not in listing.get("batch_jobs", {})
    assert sorted(listing["app"]["hosts"]) == sorted([API.alias, FULL.alias])
    assert listing["web"]["hosts"] == [FULL.alias]
    hostvars = listing["_meta"]["hostvars"][FULL.alias]
    assert {key: value for key, value in hostvars.items() if key != "ansible_ssh_common_args"} == {
        "ansible_host": "10.0.0.1",
        "ansible_user": "deploy",
        "ansible_port": 2222,
        "ansible_ssh_private_key_file": "/srv/deploy keys/id_ed25519",
        "ec2_instance_id": "i-0aaa",
        "ec2_availability_zone": "eu-west-1a",
        "ec2_private_ip": "10.0.0.1",
        "ec2_state": "running",
        "membership_status": "InService",
        "ec2_tags": {},
    }


@pytest.mark.parametrize("user", ["yes", "no", "on", "null", "y", "true"])
def test_ansible_reads_a_user_that_looks_like_another_yaml_type_as_that_text(tmp_path, known_hosts, user):
    """ansible-core 2.19 reads `!unsafe 'yes'` as true (and `!unsafe '0123'` as 83), so values
    without a template character are written as plain quoted text, which every version keeps."""
    host = Host(**{**MINIMAL.__dict__, "user": user})
    hostvars = ansible_raw_hostvars(tmp_path, render_ansible([SiteInventory("web-prod", (host,))], known_hosts))
    assert hostvars[host.alias]["ansible_user"] == user


@pytest.mark.parametrize("host", [FULL, MINIMAL], ids=lambda h: h.alias)
def test_ansible_ssh_args_reach_ssh_intact(tmp_path, known_hosts, host):
    """Split as Ansible splits them (shlex), then parsed by ssh itself."""
    # Only ssh reads these arguments, so a % (a token to ssh) is allowed and escaped.
    known_hosts = known_hosts.replace("known_hosts", "known_hosts 50%")
    listing, _ = ansible_list(tmp_path, render_ansible(SITES, known_hosts))
    hostvars = listing["_meta"]["hostvars"][host.alias]
    args = shlex.split(hostvars["ansible_ssh_common_args"])
    resolved = ssh_resolve(os.devnull, hostvars["ansible_host"], *args)
    expected = {
        "hostkeyalias": host.alias,
        "stricthostkeychecking": "accept-new",
        "userknownhostsfile": known_hosts,
        "hashknownhosts": "no",
        "proxyjump": host.proxy_jump,
    }
    assert {key: resolved.get(key) for key in expected} == expected


def test_ansible_never_templates_config_values(tmp_path, known_hosts):
    """A `{{ lookup('pipe', ...) }}` in any value reaches Ansible as text, never as a command.

    Connection local and the debug module: Ansible evaluates every host variable of the
    host (hostvars[inventory_hostname]) on the controller, where a lookup would run.
    """
    marker = tmp_path / "lookup-ran"
    # Double quotes: the template stays whole inside the shell-quoted ssh arguments too.
    lookup = '{{ lookup("pipe", "touch %s") }}' % marker
    host = Host(
        site="web", alias="web-i-0ddd", address="10.0.0.4", instance=Instance("i-0ddd", "running"),
        status="InService", user=lookup, identity_file=f"/keys/{lookup}", proxy_jump=f"{lookup}@bastion",
    )
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(render_ansible([SiteInventory("web", (host,))], f"{known_hosts}{lookup}"))
    argv = [ansible_program("ansible"), "-i", str(inventory), "all", "-c", "local", "-m", "debug",
            "-a", "var=hostvars[inventory_hostname]"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=READER_TIMEOUT_S, env=ansible_env(tmp_path))
    assert not marker.exists(), "Ansible ran a lookup written in the inventory"
    assert result.returncode == 0, result.stdout + result.stderr
    shown = json.loads(result.stdout.split("=>", 1)[1])["hostvars[inventory_hostname]"]
    assert shown["ansible_user"] == lookup
    assert shown["ansible_ssh_private_key_file"] == f"/keys/{lookup}"
    raw = ansible_raw_hostvars(tmp_path, inventory.read_text())["web-i-0ddd"]
    for name in ("ansible_user", "ansible_ssh_private_key_file", "ansible_ssh_common_args"):
        assert set(raw[name]) == {"__ansible_unsafe"}, name


# --- Capistrano -------------------------------------------------------------------


def test_capistrano_declares_one_server_per_alias_and_none_for_an_empty_site(tmp_path):
    cap = need("cap")
    project = tmp_path / "deploy"
    shutil.copytree(READERS_DIR, project)
    servers_file = tmp_path / "servers.yml"
    servers_file.write_text(render_capistrano(SITES))
    result = run(
        [cap, CAP_STAGE, "list_sites"],
        cwd=project,
        env={**os.environ, "CAP_CONFIG": str(servers_file)},
    )
    listed = {}
    for line in result.stdout.splitlines():
        if line.startswith("site "):
            site, _, hostnames = line.removeprefix("site ").partition(":")
            listed[site] = hostnames.split()
    assert listed == {
        "api": [API.alias],
        "batch.jobs": [],
        "web-prod": [FULL.alias, MINIMAL.alias],
    }


# --- net-ssh (how Capistrano connects) --------------------------------------------

NET_SSH_DUMP = (
    "c = Net::SSH::Config.for(ARGV[0], [ARGV[1]]); "
    "c[:proxy] = c[:proxy].jump_proxies if c[:proxy].respond_to?(:jump_proxies); "
    "puts JSON.generate(c)"
)


def net_ssh_resolve(config: Path, alias: str) -> dict:
    ruby = need("ruby", ["ruby", "-rnet/ssh", "-e", "1"])
    result = run([ruby, "-rnet/ssh", "-rjson", "-e", NET_SSH_DUMP, alias, str(config)])
    return json.loads(result.stdout)


@pytest.mark.parametrize("host", [FULL, MINIMAL], ids=lambda h: h.alias)
def test_net_ssh_resolves_our_config(tmp_path, known_hosts, host):
    config = tmp_path / "ssh_config"
    config.write_text(merge_managed_block(USER_CONFIG, render_ssh_config(SITES, known_hosts)))
    resolved = net_ssh_resolve(config, host.alias)
    expected = {
        "host_name": host.address,
        "user": host.user or "alice",
        "port": host.port,
        "keys": [host.identity_file] if host.identity_file else None,
        "proxy": host.proxy_jump,
        "host_key_alias": host.alias,
        "verify_host_key": "accept_new",
        "user_known_hosts_file": known_hosts,
    }
    assert {key: resolved.get(key) for key in expected} == expected
