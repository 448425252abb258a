"""Issue 13, transport ssm / eice: ssh reaches a host through an `aws` CLI tunnel.

The real readers run the files the real CLI writes: `ssh -G` shows the ProxyCommand, and real
ssh, Ansible and Capistrano connect through it to real hosts (helper/sandbox/hosts.py). The
`aws` they run is tests/standin/aws, first on PATH: it takes exactly the argv the real CLI
would get, records it, and relays the session to the instance's host. Every tunnel carries a
profile with a space, both quotes, `%`, `$( )`, a backtick, `#` and `{{ }}`, which must reach
`aws` as it is and run nothing on the way.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helper.cli import main
from helper.errors import OutputError
from helper.inventory.model import Host, Instance, SiteInventory, Tunnel
from helper.inventory.render import render_ssh_config
from helper.inventory.render.ssh import proxy_command
from helper.sandbox.aws import fleet
from helper.sandbox.aws.server import SANDBOX_ENV
from helper.sandbox.hosts import SshHost
from helper.settings import load_config
from helper.setup.doctor import check_tunnel_programs
from helper.setup.findings import FAIL, OK, WARN
from tests.realdeploy import CAPAPP, needs_real_hosts
from tests.units import HELPER_BIN

ROOT = Path(__file__).resolve().parents[2]
STANDIN_DIR = ROOT / "tests" / "standin"
REGION = "us-east-1"
ENDPOINT = "eice-0123456789abcdef0"
# Each character a shell, ssh's %-tokens, ssh's config reader, net-ssh or Jinja could take for
# its own. `touch pwned` would leave a file in the working directory if any of them ran it.
PROFILE = """ops team's "blue" 100% $(touch pwned) `touch pwned` #1 {{ lookup('pipe', 'touch pwned') }}"""
# A run of the CLI or of a reader takes a second or two; this only turns a hang into a failure.
TIMEOUT_S = 60
SSH_COMMAND = "ip -4 -o addr show eth0"  # each host answers with its own address


def expected_argv(kind: str, instance_id: str, profile: str | None = PROFILE, port: int = 22,
                  region: str = REGION, endpoint: str | None = None) -> list[str]:
    """What the real `aws` must receive, after `aws` itself."""
    words = {
        "ssm": ["ssm", "start-session", "--target", instance_id, "--document-name", "AWS-StartSSHSession",
                "--parameters", f"portNumber={port}"],
        "eice": ["ec2-instance-connect", "open-tunnel", "--instance-id", instance_id, "--remote-port", str(port)],
    }[kind] + ["--region", region]
    words += ["--profile", profile] if profile else []
    return words + (["--instance-connect-endpoint-id", endpoint] if endpoint else [])


def ssh_resolve(config: Path, alias: str, *options: str) -> dict[str, str]:
    output = subprocess.run(["ssh", "-G", "-F", str(config), *options, alias], capture_output=True, text=True,
                            timeout=TIMEOUT_S, check=True).stdout
    # split("\n"), not splitlines(): ssh ends lines only at \n, a U+2028 in a value is text.
    return dict(line.partition(" ")[::2] for line in reversed(output.split("\n")))


def as_ssh_runs(proxy: str, host: str, port: str) -> list[str]:
    """The words of a ProxyCommand after ssh expands %h %p %% (ssh_config(5) TOKENS), as sh splits them."""
    expanded = re.sub(r"%(.)", lambda m: {"h": host, "p": port, "%": "%"}[m.group(1)], proxy)
    return shlex.split(expanded)


# --- the rendered line, read by ssh -G (no hosts needed) ------------------------------------------


@pytest.mark.parametrize("kind, profile, region, endpoint", [
    ("ssm", PROFILE, REGION, None),
    ("eice", PROFILE, REGION, ENDPOINT),
    ("eice", None, "eu-west-1", None),
    ("ssm", "%h %p %r %C", REGION, None),  # tokens in a value are text, never expanded
    ("ssm", "x' ; touch pwned ; '", "us east 'quoted'", None),
    ("eice", "a\u2028b\u0085c\\d", REGION, None),  # Unicode line breaks and a backslash: one word still
], ids=["ssm-hostile", "eice-endpoint", "eice-default-profile", "tokens", "breakout", "unicode-breaks"])
def test_ssh_reads_the_proxy_command_with_every_value_intact(tmp_path, kind, profile, region, endpoint):
    instance_id = "i-0123456789abcdef0"
    host = Host(site="web", alias=f"web-{instance_id}", address=instance_id, instance=Instance(instance_id, "running"),
                status="InService", port=2222, tunnel=Tunnel(kind, region, profile, endpoint))
    config = tmp_path / "ssh_config"
    config.write_text(render_ssh_config([SiteInventory("web", (host,))], str(tmp_path / "known_hosts")))

    resolved = ssh_resolve(config, host.alias)

    assert as_ssh_runs(resolved["proxycommand"], instance_id, "2222") == [
        "aws", *expected_argv(kind, instance_id, profile, 2222, region, endpoint)]
    assert {k: resolved[k] for k in ("hostname", "hostkeyalias", "stricthostkeychecking", "userknownhostsfile")} == {
        "hostname": instance_id, "hostkeyalias": host.alias, "stricthostkeychecking": "accept-new",
        "userknownhostsfile": str(tmp_path / "known_hosts")}
    assert "proxyjump" not in resolved


@pytest.mark.parametrize("field", ["profile", "region"])
@pytest.mark.parametrize("value, reason", [
    *((f"ops{char}ProxyCommand touch pwned", "it contains a control character")
      for char in ("\n", "\r", "\x1b", "\x00", "\x7f")),
    # `aws --profile --debug` would parse --debug as an option, and then miss --profile's value.
    ("--debug", "the aws CLI would read it as an option"),
    ("-x", "the aws CLI would read it as an option"),
], ids=["LF", "CR", "ESC", "NUL", "DEL", "long-option", "short-option"])
def test_the_renderer_refuses_a_tunnel_value_aws_would_not_get_intact(field, value, reason):
    """The config refuses control characters first (test below); this guards every other way in."""
    values = {"profile": "ops", "region": REGION, field: value}
    with pytest.raises(OutputError) as refused:
        proxy_command(Tunnel("ssm", values["region"], values["profile"]))
    assert str(refused.value) == f"cannot write ProxyCommand with --{field} {value!r}: {reason}"


def with_profile(tmp_path: Path, monkeypatch, profile: str) -> None:
    """Give botocore a profile of that name: discovery uses the profile the tunnel carries."""
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(f"[{profile}]\naws_access_key_id = {SANDBOX_ENV['AWS_ACCESS_KEY_ID']}\n"
                           f"aws_secret_access_key = {SANDBOX_ENV['AWS_SECRET_ACCESS_KEY']}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))


# --- config errors, through the CLI ----------------------------------------------------------------


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(HELPER_BIN), *argv], capture_output=True, text=True, timeout=TIMEOUT_S)


def refused(config: Path, capsys) -> list[str]:
    """The CLI's stderr lines for a config it must refuse with exit 2 (in-process: the tables stay fast;
    tunnel_world runs the installed program)."""
    code = main(["inventory", "-c", str(config)])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2, lines
    return lines


def config_lines(tmp_path: Path, *site_lines: str, top: tuple[str, ...] = ()) -> Path:
    out = tmp_path / "out"
    path = tmp_path / "deploy.yml"
    path.write_text("\n".join([*top, "path:", f"  ssh_config_file: {out / 'ssh_config'}",
                               "sites:", "  web:", "    elb: web-elb", *site_lines]) + "\n")
    return path


@pytest.mark.parametrize("lines, line, message", [
    (["    transport: ssm", "    proxy_jump: bastion.example.com"], 7,
     "sites.web.proxy_jump: transport ssm needs no jump host; give one or the other"),
    (["    transport: eice", "    bastion: ops@bastion.example.com"], 7,
     "sites.web.bastion: transport eice needs no jump host; give one or the other"),
    (["    instance_connect_endpoint_id: eice-0123456789abcdef0"], 6,
     "sites.web.instance_connect_endpoint_id: needs transport: eice"),
    (["    transport: ssm", "    instance_connect_endpoint_id: eice-0123456789abcdef0"], 7,
     "sites.web.instance_connect_endpoint_id: needs transport: eice"),
    (["    transport: eice", "    instance_connect_endpoint_id: eice-0123; touch pwned"], 7,
     "sites.web.instance_connect_endpoint_id: 'eice-0123; touch pwned' is not eice-<hex>"),
    (["    transport: eice", "    instance_connect_endpoint_id: EICE-0123456789ABCDEF0"], 7,
     "sites.web.instance_connect_endpoint_id: 'EICE-0123456789ABCDEF0' is not eice-<hex>"),
    (["    transport: tunnel"], 6, "sites.web.transport: must be one of ssh, ssm, eice, not 'tunnel'"),
    (["    transport: SSM"], 6, "sites.web.transport: must be one of ssh, ssm, eice, not 'SSM'"),
], ids=["ssm-proxy-jump", "eice-bastion", "endpoint-without-transport", "endpoint-with-ssm", "endpoint-injection",
        "endpoint-upper-case", "unknown", "upper-case"])
def test_a_wrong_transport_setting_is_one_line_naming_file_line_and_key(tmp_path, capsys, lines, line, message):
    config = config_lines(tmp_path, *lines)
    assert refused(config, capsys) == [f"aws-deploy-helper: {config}:{line}: {message}"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "pwned").exists()


def test_the_installed_program_refuses_a_wrong_transport_with_exit_2(tmp_path):
    config = config_lines(tmp_path, "    transport: tunnel")
    result = run_cli("inventory", "-c", str(config))
    assert (result.returncode, result.stderr.splitlines()) == (
        2, [f"aws-deploy-helper: {config}:6: sites.web.transport: must be one of ssh, ssm, eice, not 'tunnel'"])


@pytest.mark.parametrize("where", ["site profile", "defaults profile", "top profile", "site region"])
@pytest.mark.parametrize("escape", [r"\n", r"\r", r"\e", r"\x7f"])
def test_a_control_character_in_a_tunnel_profile_or_region_is_refused_before_anything_is_written(
        tmp_path, capsys, where, escape):
    value = f'"ops{escape}ProxyCommand touch pwned"'
    key = where.split()[1]
    site = [f"    {key}: {value}"] if where.startswith("site") else []
    top = ([f"{key}: {value}"] if where == "top profile" else
           ["defaults:", f"  {key}: {value}"] if where.startswith("defaults") else [])
    config = config_lines(tmp_path, "    transport: ssm", *site, top=tuple(top))
    (line,) = refused(config, capsys)
    assert line.startswith(f"aws-deploy-helper: {config}:") and "control character" in line, line
    assert not (tmp_path / "out").exists()


# --- doctor ----------------------------------------------------------------------------------------


def program(directory: Path, name: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


def tunnel_config(tmp_path: Path, transports: dict[str, str]) -> Path:
    config = tmp_path / "deploy.yml"
    config.write_text(yaml.safe_dump({"sites": {site: {"elb": f"{site}-elb", "region": REGION, "transport": t}
                                                for site, t in transports.items()}}, sort_keys=False))
    return config


def path_with(tmp_path: Path, *names: str) -> str:
    """A PATH holding only `names`: the stand-in `aws`, and any program as the plugin (doctor only looks)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in names:
        if name == "aws":
            shutil.copy(STANDIN_DIR / "aws", bin_dir)
            (bin_dir / "python3").symlink_to(sys.executable)  # the stand-in's interpreter (doctor runs it)
        else:
            program(bin_dir, name)
    return str(bin_dir)


@pytest.mark.parametrize("version, transports, level, text", [
    ("2.15.30", {"api": "eice"}, OK, "bin/aws, for site(s) api (eice); AWS CLI 2.15.30"),
    ("2.12.0", {"api": "eice"}, OK, "; AWS CLI 2.12.0"),
    ("2.11.27", {"api": "eice"}, FAIL, "bin/aws is AWS CLI 2.11.27; site(s) api need 2.12.0 or later, whose "
                                       "ec2-instance-connect open-tunnel carries their ssh — install AWS CLI v2"),
    ("1.32.0", {"web": "ssm", "api": "eice"}, FAIL, "is AWS CLI 1.32.0; site(s) api need 2.12.0 or later"),
    ("1.32.0", {"web": "ssm"}, OK, "bin/aws, for site(s) web (ssm)"),  # v1 and the plugin carry Session Manager
    ("two.twelve", {"api": "eice"}, WARN, "--version did not say which AWS CLI it is; site(s) api need AWS CLI "
                                          "2.12.0 or later"),
], ids=["v2", "first-with-open-tunnel", "v2-too-old", "v1-for-eice", "v1-for-ssm-only", "unreadable"])
def test_doctor_fails_an_aws_cli_without_open_tunnel_for_an_eice_site(
        tmp_path, monkeypatch, version, transports, level, text):
    sites = load_config(str(tunnel_config(tmp_path, transports))).sites
    monkeypatch.setenv("PATH", path_with(tmp_path, "aws", "session-manager-plugin"))
    program_env = {"PATH": os.environ["PATH"], "STANDIN_AWS_VERSION": version}

    aws_cli = [f for f in check_tunnel_programs(sites, env=program_env) if f.subject == "program aws"]

    assert [f.level for f in aws_cli] == [level]
    assert text in aws_cli[0].line(), aws_cli[0].line()


@pytest.mark.parametrize("script", [
    "echo aws-cli/2.15.30 Python/3.11.8; exit 1",   # a version, but the program failed
    "echo 'aws: [ERROR]: unknown option'",           # runs, says nothing of a version
    "exec 1>&-; exit 0",                              # says nothing at all
], ids=["failed", "no-version", "silent"])
def test_an_aws_program_that_will_not_say_its_version_is_a_warning_not_a_pass(tmp_path, monkeypatch, script):
    sites = load_config(str(tunnel_config(tmp_path, {"api": "eice"}))).sites
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(f"#!/bin/sh\n{script}\n")
    (bin_dir / "aws").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))

    found = check_tunnel_programs(sites, env={"PATH": str(bin_dir)})

    assert [(f.level, f.subject) for f in found] == [(WARN, "program aws")]
    assert f"{bin_dir}/aws --version did not say which AWS CLI it is" in found[0].line()


@pytest.mark.parametrize("transports, on_path, expected", [
    ({"web": "ssm", "api": "eice"}, (), [
        (FAIL, "aws", "is not on PATH; ssh reaches site(s) web (ssm), api (eice) through it"),
        (FAIL, "session-manager-plugin", "is not on PATH; ssh reaches site(s) web (ssm) through it")]),
    ({"web": "ssm", "api": "eice"}, ("aws",), [
        (OK, "aws", "for site(s) web (ssm), api (eice)"),
        (FAIL, "session-manager-plugin", "is not on PATH; ssh reaches site(s) web (ssm) through it")]),
    ({"web": "ssm", "api": "ssh"}, ("aws", "session-manager-plugin"), [
        (OK, "aws", "for site(s) web (ssm)"), (OK, "session-manager-plugin", "for site(s) web (ssm)")]),
    ({"web": "eice", "api": "ssh"}, ("session-manager-plugin",), [
        (FAIL, "aws", "is not on PATH; ssh reaches site(s) web (eice) through it")]),
    ({"web": "ssh", "api": "ssh"}, (), []),
], ids=["none-installed", "no-plugin", "all-installed", "eice-needs-no-plugin", "no-tunnel-no-finding"])
def test_doctor_names_the_missing_tunnel_programs_and_the_sites_that_need_them(
        tmp_path, monkeypatch, transports, on_path, expected):
    sites = load_config(str(tunnel_config(tmp_path, transports))).sites
    bin_dir = path_with(tmp_path, *on_path)
    monkeypatch.setenv("PATH", bin_dir)

    found = check_tunnel_programs(sites, env={"PATH": bin_dir})  # shutil.which on the PATH above

    assert [(f.level, f.subject) for f in found] == [(level, f"program {name}") for level, name, _ in expected]
    for finding, (level, name, text) in zip(found, expected):
        line = finding.line()
        assert text in line, line
        if level == FAIL:
            fix = "install AWS CLI v2" if name == "aws" else "install the Session Manager plugin"
            assert f" — {fix} (https://docs.aws.amazon.com/" in line, line
        else:
            assert f"{bin_dir}/{name}, for" in line, line


def test_the_aws_program_doctor_runs_sees_none_of_our_secrets(aws, tmp_path, monkeypatch, capsys):
    """`aws` is whatever is first on PATH: asked its version, it gets PATH, HOME and the locale,
    not the Jenkins token (or the AWS keys) in doctor's own environment."""
    config = tunnel_config(tmp_path, {"api": "eice"})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen-env"
    (bin_dir / "aws").write_text(f"#!/bin/sh\nenv > {seen}\necho aws-cli/2.15.30 Python/3.11.8\n")
    (bin_dir / "aws").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("JENKINS_API_TOKEN", "s3cr3t-jenkins-token")
    monkeypatch.setenv("LANG", "C.UTF-8")

    main(["doctor", "-c", str(config)])

    lines = capsys.readouterr().out.splitlines()
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert any(line.startswith("OK") and "program aws" in line and "AWS CLI 2.15.30" in line for line in lines), lines
    assert "s3cr3t-jenkins-token" not in seen.read_text()
    assert not {"JENKINS_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & env.keys()
    assert env["PATH"] == os.environ["PATH"] and env["LANG"] == "C.UTF-8"


def test_doctor_reports_a_missing_aws_cli_before_any_aws_call_and_fails(aws, tmp_path, monkeypatch, capsys):
    config = tunnel_config(tmp_path, {"web": "eice"})
    monkeypatch.setenv("PATH", path_with(tmp_path))

    code = main(["doctor", "-c", str(config)])

    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[1].startswith("FAIL program aws is not on PATH; ssh reaches site(s) web (eice) through it"), lines


# --- real connections through the stand-in ---------------------------------------------------------


@dataclass
class TunnelWorld:
    """Site `web` (ssm) and site `api` (eice, an endpoint id), one instance each, written by the CLI."""
    tmp: Path
    out: Path
    ids: dict[str, str]  # site -> instance id
    hosts: dict[str, SshHost]  # site -> its host
    env: dict[str, str]  # what a deploy runs with: the stand-in `aws` first on PATH
    argv_log: Path

    def alias(self, site: str) -> str:
        return f"{site}-{self.ids[site]}"

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.argv_log.read_text().splitlines()]

    def run(self, argv: list[str], **env: str) -> subprocess.CompletedProcess:
        # The working directory is where `touch pwned` would land.
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, env={**self.env, **env},
                              cwd=self.tmp)

    def nothing_ran(self) -> bool:
        return not (self.tmp / "pwned").exists()


@pytest.fixture
def tunnel_world(aws, tmp_path, network, monkeypatch) -> TunnelWorld:
    with_profile(tmp_path, monkeypatch, PROFILE)
    ec2 = fleet.client("ec2", aws, REGION)
    ids, hosts = {}, {}
    for site in ("web", "api"):
        fleet.classic_elb_site(aws, REGION, f"{site}-elb", 1, subnet_id=fleet.default_subnets(ec2)[0])
        named = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [f"{site}-elb"]}])
        (instance,) = named["Reservations"][0]["Instances"]
        ids[site] = instance["InstanceId"]
        hosts[site] = network.add_host(instance["PrivateIpAddress"])
    out = tmp_path / "out"
    config = tmp_path / "deploy.yml"
    common = {"region": REGION, "user": "root", "identity_file": str(network.deploy_key), "profile": PROFILE}
    config.write_text(yaml.safe_dump({
        "path": {"ssh_config_file": str(out / "ssh_config"), "known_hosts_file": str(out / "known_hosts"),
                 "cap_config_file": str(out / "cap.yml"), "ansible_inventory_file": str(out / "inventory.yml")},
        "sites": {"web": {"elb": "web-elb", "transport": "ssm", **common},
                  "api": {"elb": "api-elb", "transport": "eice", "instance_connect_endpoint_id": ENDPOINT,
                          **common}}}))
    written = run_cli("inventory", "-c", str(config))
    assert written.returncode == 0, written.stderr
    hosts_map = tmp_path / "instances.json"
    hosts_map.write_text(json.dumps({ids[site]: hosts[site].ip for site in ids}))
    argv_log = tmp_path / "aws-argv.jsonl"
    argv_log.touch()
    env = {**os.environ, "PATH": os.pathsep.join([str(STANDIN_DIR), str(Path(sys.executable).parent), "/usr/bin",
                                                 "/bin"]),
           "STANDIN_AWS_ARGV_LOG": str(argv_log), "STANDIN_AWS_HOSTS": str(hosts_map), "LC_ALL": "C.UTF-8"}
    return TunnelWorld(tmp_path, out, ids, hosts, env, argv_log)


def answered_by(output: str, host: SshHost) -> bool:
    return f" {host.ip}/" in output


@needs_real_hosts()
def test_ssh_reaches_each_host_through_its_tunnel_with_the_profile_intact(tunnel_world):
    world = tunnel_world
    config = world.out / "ssh_config"
    for site, kind, endpoint in (("web", "ssm", None), ("api", "eice", ENDPOINT)):
        resolved = ssh_resolve(config, world.alias(site))
        assert resolved["hostname"] == world.ids[site]
        assert as_ssh_runs(resolved["proxycommand"], world.ids[site], "22") == [
            "aws", *expected_argv(kind, world.ids[site], endpoint=endpoint)]
        assert (resolved["hostkeyalias"], resolved["stricthostkeychecking"]) == (world.alias(site), "accept-new")

    web = world.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", world.alias("web"), SSH_COMMAND])
    api = world.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", world.alias("api"), SSH_COMMAND])

    assert web.returncode == 0 and answered_by(web.stdout, world.hosts["web"]), web.stderr
    assert api.returncode == 0 and answered_by(api.stdout, world.hosts["api"]), api.stderr
    assert world.calls() == [expected_argv("ssm", world.ids["web"]),
                             expected_argv("eice", world.ids["api"], endpoint=ENDPOINT)]
    known = [line.split()[:3] for line in (world.out / "known_hosts").read_text().splitlines()]
    assert sorted(known) == sorted([world.alias(site), *world.hosts[site].host_key_pub.split()[:2]]
                                   for site in ("web", "api"))
    assert world.nothing_ran()


@needs_real_hosts()
def test_ansible_runs_a_command_on_each_host_through_its_tunnel(tunnel_world):
    world = tunnel_world
    inventory = world.out / "inventory.yml"
    env = {"ANSIBLE_HOME": str(world.tmp / "ansible-home"),
           "ANSIBLE_LOCAL_TEMP": str(world.tmp / "ansible-tmp"), "ANSIBLE_INVENTORY_ENABLED": "yaml",
           "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
           # No ControlPersist: a master left running would outlive the test, and its tunnel with it.
           "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPath=none"}
    listed = world.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--list"], **env)
    assert listed.returncode == 0, listed.stderr
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]
    for site, kind, endpoint in (("web", "ssm", None), ("api", "eice", ENDPOINT)):
        args = hostvars[world.alias(site)]["ansible_ssh_common_args"]
        args = args["__ansible_unsafe"] if isinstance(args, dict) else args
        resolved = ssh_resolve(Path(os.devnull), world.ids[site], *shlex.split(args))
        assert as_ssh_runs(resolved["proxycommand"], world.ids[site], "22") == [
            "aws", *expected_argv(kind, world.ids[site], endpoint=endpoint)]

    ran = world.run([str(Path(sys.executable).parent / "ansible"), "all", "-i", str(inventory), "-m", "raw",
                     "-a", SSH_COMMAND], **env)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    answers = dict(re.findall(r"^(\S+) \| CHANGED \| rc=0 >>\n(.*?)(?=^\S+ \| |\Z)", ran.stdout, re.M | re.S))
    assert set(answers) == {world.alias("web"), world.alias("api")}, ran.stdout
    for site in ("web", "api"):
        assert answered_by(answers[world.alias(site)], world.hosts[site]), answers
    assert sorted(world.calls()) == sorted([expected_argv("ssm", world.ids["web"]),
                                            expected_argv("eice", world.ids["api"], endpoint=ENDPOINT)])
    assert world.nothing_ran()


@needs_real_hosts()
def test_capistrano_runs_a_task_on_the_site_through_its_tunnel(tunnel_world):
    """net-ssh reads the same ProxyCommand: it expands %h %p %% and hands the line to a shell."""
    world = tunnel_world
    project = world.tmp / "capapp"
    shutil.copytree(CAPAPP, project)
    env = {**world.env, "CAP_CONFIG": str(world.out / "cap.yml"), "SSH_CONFIG": str(world.out / "ssh_config"),
           "REPO_URL": "file:///nonexistent.git", "REVISION": "v1"}

    # A standard Capistrano task that runs a command on every server of the stage (site `web`).
    ran = subprocess.run(["cap", "web", "deploy:check:directories"], capture_output=True, text=True,
                         timeout=TIMEOUT_S, env=env, cwd=project)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert world.hosts["web"].run(["test", "-d", "/srv/app/releases"], check=False).returncode == 0
    assert world.hosts["api"].run(["test", "-d", "/srv/app/releases"], check=False).returncode == 1
    assert world.calls() == [expected_argv("ssm", world.ids["web"])]
    assert not (project / "pwned").exists() and world.nothing_ran()


def test_a_profile_aws_would_read_as_an_option_fails_the_run_and_writes_nothing(aws, tmp_path, monkeypatch, capsys):
    with_profile(tmp_path, monkeypatch, "--debug")
    fleet.classic_elb_site(aws, REGION, "web-elb", 1)
    config = config_lines(tmp_path, f"    region: {REGION}", "    transport: eice", "    profile: --debug")

    code = main(["inventory", "-c", str(config)])

    assert (code, capsys.readouterr().err.splitlines()) == (1, ["aws-deploy-helper: cannot write ProxyCommand with"
                                                                " --profile '--debug': the aws CLI would read it"
                                                                " as an option"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, reason", [
    (["ssm", "start-session", "--target", "i-0123456789abcdef0", "--parameters", "portNumber=22",
      "--region", REGION], "missing --document-name"),
    (["ssm", "start-session", "--target", "i-0123456789abcdef0", "--document-name", "AWS-StartInteractiveCommand",
      "--parameters", "portNumber=22", "--region", REGION], "--document-name must be AWS-StartSSHSession"),
    (["ssm", "start-session", "--target", "i-0123456789abcdef0", "--document-name", "AWS-StartSSHSession",
      "--parameters", "portNumber=22", "--region", REGION, "--profile"], "expected --name value pairs"),
    (["ec2-instance-connect", "open-tunnel", "--instance-id", "i-0123456789abcdef0", "--remote-port", "22",
      "--region", REGION, "--profile", "--debug"], "--profile needs a value"),
    (["ec2-instance-connect", "open-tunnel", "--instance-id", "web-host", "--remote-port", "22",
      "--region", REGION], "is not an instance id"),
    (["ec2-instance-connect", "open-tunnel", "--instance-id", "i-0123456789abcdef0", "--remote-port", "22",
      "--region", REGION, "--role-arn", "arn:aws:iam::1:role/x"], "unknown option '--role-arn'"),
    (["ssm", "start-session", "--target", "i-0123456789abcdef0"], "missing --document-name, --parameters"),
], ids=["no-document", "other-document", "dangling-option", "option-as-value", "not-an-id", "role-arn", "short"])
def test_the_stand_in_refuses_an_argv_the_real_cli_would_not_run_as_a_tunnel(tmp_path, argv, reason):
    """So a wrong ProxyCommand fails the connection tests instead of reaching a host anyway."""
    log = tmp_path / "argv.jsonl"
    ran = subprocess.run([str(STANDIN_DIR / "aws"), *argv], capture_output=True, text=True, timeout=TIMEOUT_S,
                         env={**os.environ, "STANDIN_AWS_ARGV_LOG": str(log)}, stdin=subprocess.DEVNULL)
    assert ran.returncode == 2 and ran.stderr.startswith("aws (stand-in): ") and reason in ran.stderr, ran.stderr
    assert [json.loads(line) for line in log.read_text().splitlines()] == [argv]
