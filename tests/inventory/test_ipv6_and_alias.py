"""Issue 13: `address: ipv6` and `alias_tag`, from moto's answer through the CLI to real ssh.

The instances live in a VPC of their own with an IPv6 prefix, launched with Ipv6AddressCount as
AWS users do. The real hosts (helper/sandbox/hosts.py) sit at exactly the addresses moto gave each
instance, IPv4 and IPv6, on a bridge whose IPv6 prefix is a documentation one, so nothing here can
reach past the runner. The files the CLI writes are read by their real readers: ssh -G, ssh itself,
ansible-inventory and Capistrano.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helper import PROG
from helper.aws.clients import AccessKey, AwsClients
from helper.cli import main
from helper.inventory.discover import describe_instances, first_ipv6, instance_from_ec2
from helper.sandbox.aws import fleet
from helper.sandbox.hosts import HostNetwork, SshHost
from tests.realdeploy import needs_real_hosts
from tests.test_readers import CAP_STAGE, READERS_DIR, ansible_list, need, run, ssh_resolve

REGION = "us-east-1"
SITE = "web"
# Not moto's default VPC (172.31.0.0/16), so these tests never wait on the lock other real-host
# tests hold, and a documentation IPv6 prefix (RFC 3849) that the runner routes nowhere.
VPC_CIDR = "10.86.0.0/16"
SUBNET_CIDR = "10.86.1.0/24"
IPV6_SUBNET = "2001:db8:86:1::/64"
SSH_TIMEOUT_S = 20  # a guard only: a working connection takes well under a second


# --- first_ipv6 and the IPv6 check: AWS-shaped answers ---------------------------------------

BASE = {"InstanceId": "i-0123456789abcdef0", "State": {"Name": "running"}, "PrivateIpAddress": "10.86.1.4"}


def eni(index: int, *addresses: tuple[str, bool]) -> dict:
    """A DescribeInstances network interface with (address, IsPrimaryIpv6) pairs."""
    return {"Attachment": {"DeviceIndex": index},
            "Ipv6Addresses": [{"Ipv6Address": a, "IsPrimaryIpv6": p} for a, p in addresses]}


@pytest.mark.parametrize("raw, expected", [
    # AWS since primary IPv6: the instance's own field wins over the interfaces.
    ({"Ipv6Address": "2001:db8::10", "NetworkInterfaces": [eni(0, ("2001:db8::99", False))]}, "2001:db8::10"),
    # The interface marks its primary one; it comes first even when listed second.
    ({"NetworkInterfaces": [eni(0, ("2001:db8::1", False), ("2001:db8::2", True))]}, "2001:db8::2"),
    # moto's shape: no Ipv6Address, nothing marked primary: the first listed.
    ({"NetworkInterfaces": [eni(0, ("2001:db8::1", False), ("2001:db8::2", False))]}, "2001:db8::1"),
    # eth0 before eth1, whatever order EC2 lists them in.
    ({"NetworkInterfaces": [eni(1, ("2001:db8::b", True)), eni(0, ("2001:db8::a", False))]}, "2001:db8::a"),
    # eth0 without IPv6: eth1's.
    ({"NetworkInterfaces": [eni(0), eni(1, ("2001:db8::b", False))]}, "2001:db8::b"),
    ({"Ipv6Address": "", "NetworkInterfaces": [eni(0, ("2001:db8::1", False))]}, "2001:db8::1"),
    ({"NetworkInterfaces": [eni(0)]}, None),
    ({"NetworkInterfaces": []}, None),
    ({}, None),
])
def test_first_ipv6_reads_each_shape_ec2_answers_with(raw, expected):
    assert first_ipv6({**BASE, **raw}) == expected
    instance = instance_from_ec2({**BASE, **raw})
    assert (instance.ipv6, instance.problem) == (expected, None)


@pytest.mark.parametrize("value", [
    "fe80::1%eth0",  # a scope id may hold anything, and names the runner's interface, not the host's
    "2001:db8::1%0",
    "fe80::1",  # link-local: unusable without a scope id
    "2001:db8::1\n    ProxyCommand touch /tmp/owned",
    "2001:db8::1 ",
    "[2001:db8::1]",
    "2001:db8::1:22:33:44:55:66:77",  # nine groups
    "not an address",
    "10.86.1.4",  # IPv4 where IPv6 was asked for
    "::ffff:10.86.1.4",  # IPv4-mapped: ssh would go to an IPv4 host
    "::1", "::", "ff02::1",
    "",
])
@pytest.mark.parametrize("shape", ["instance", "interface"])
def test_an_odd_ipv6_value_makes_the_instance_unusable(value, shape):
    where = ({"Ipv6Address": value} if shape == "instance"
             else {"NetworkInterfaces": [eni(0, (value, True))]})
    instance = instance_from_ec2({**BASE, **where})
    if value == "":  # EC2's way of saying "none": not an address, not a problem
        assert (instance.ipv6, instance.problem) == (None, None)
    else:
        assert instance.problem == f"IPv6 address {value!r} is not valid"


@pytest.mark.parametrize("value", ["2001:db8::1", "2600:1f18:abc:1::5", "fd12:3456::7", "2001:DB8::A"])
def test_ipv6_addresses_ec2_assigns_are_accepted(value):
    assert instance_from_ec2({**BASE, "Ipv6Address": value}).problem is None


# --- moto: a VPC with an IPv6 prefix ---------------------------------------------------------


@dataclass(frozen=True)
class Launched:
    instance_id: str
    private_ip: str
    ipv6: str | None


class Ipv6Vpc:
    """A VPC and subnet with an IPv6 prefix in moto; instances launched into it."""

    def __init__(self, endpoint_url: str) -> None:
        self.ec2 = fleet.client("ec2", endpoint_url, REGION)
        vpc_id = self.ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
        self.ec2.associate_vpc_cidr_block(VpcId=vpc_id, AmazonProvidedIpv6CidrBlock=True)
        self.subnet_id = self.ec2.create_subnet(VpcId=vpc_id, CidrBlock=SUBNET_CIDR)["Subnet"]["SubnetId"]
        self.ec2.associate_subnet_cidr_block(SubnetId=self.subnet_id, Ipv6CidrBlock=IPV6_SUBNET)

    def launch(self, ipv6_count: int = 1, **tags: str) -> Launched:
        tags = {"Site": SITE, **tags}
        (raw,) = self.ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=self.subnet_id,
            Ipv6AddressCount=ipv6_count,
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )["Instances"]
        addresses = [a["Ipv6Address"] for a in raw["NetworkInterfaces"][0]["Ipv6Addresses"]]
        return Launched(raw["InstanceId"], raw["PrivateIpAddress"], addresses[0] if addresses else None)


def write_config(tmp_path: Path, network: HostNetwork | None = None, **site) -> Path:
    out = tmp_path / "out"
    options = {"user": "root", "identity_file": str(network.deploy_key)} if network else {}
    config = {
        "path": {
            "ssh_config_file": str(out / "ssh_config"),
            "known_hosts_file": str(out / "known_hosts"),
            "cap_config_file": str(out / "cap.yml"),
            "ansible_inventory_file": str(out / "inventory.yml"),
        },
        "sites": {SITE: {"tags": {"Site": SITE}, "region": REGION, **options, **site}},
    }
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def alias(instance: Launched) -> str:
    return f"{SITE}-{instance.instance_id}"


def test_moto_gives_ipv6_on_the_interface_and_discovery_reads_it(aws):
    vpc = Ipv6Vpc(aws)
    two, none = vpc.launch(ipv6_count=2), vpc.launch(ipv6_count=0)
    raw = vpc.ec2.describe_instances(InstanceIds=[two.instance_id])["Reservations"][0]["Instances"][0]

    # What this moto answers: no instance-level Ipv6Address, the interface's list, none primary.
    assert raw.get("Ipv6Address") is None
    listed = raw["NetworkInterfaces"][0]["Ipv6Addresses"]
    assert len(listed) == 2 and not any(a["IsPrimaryIpv6"] for a in listed)
    found = describe_instances(AwsClients(AccessKey(region=REGION, endpoint_url=aws)),
                               [two.instance_id, none.instance_id])
    assert found[two.instance_id].ipv6 == listed[0]["Ipv6Address"] == two.ipv6
    assert found[none.instance_id].ipv6 is None
    assert ipaddress.IPv6Address(two.ipv6) in ipaddress.IPv6Network(IPV6_SUBNET)


# --- address: ipv6 through the CLI ----------------------------------------------------------


def test_address_ipv6_is_the_hostname_ssh_and_ansible_read(aws, tmp_path):
    vpc = Ipv6Vpc(aws)
    first, second = vpc.launch(), vpc.launch()
    config = write_config(tmp_path, address="ipv6")

    assert main(["inventory", "-c", str(config)]) == 0

    out = tmp_path / "out"
    for instance in (first, second):
        resolved = ssh_resolve(out / "ssh_config", alias(instance))
        assert (resolved["hostname"], resolved["hostkeyalias"]) == (instance.ipv6, alias(instance))
    listing, _ = ansible_list(tmp_path, (out / "inventory.yml").read_text())
    hostvars = listing["_meta"]["hostvars"]
    assert {name: hostvars[name]["ansible_host"] for name in hostvars} == {
        alias(first): first.ipv6, alias(second): second.ipv6}


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_a_chosen_instance_without_ipv6_fails_its_site_and_changes_no_file(aws, tmp_path, capsys):
    vpc = Ipv6Vpc(aws)
    with_ipv6, without = vpc.launch(), vpc.launch(ipv6_count=0)
    config = write_config(tmp_path)
    assert main(["inventory", "-c", str(config)]) == 0  # address: private, for the files to exist
    before = snapshot(tmp_path / "out")
    capsys.readouterr()

    config = write_config(tmp_path, address="ipv6")
    assert main(["inventory", "-c", str(config)]) == 1

    errors = capsys.readouterr().err.splitlines()
    assert f"{PROG}: site {SITE}: instance {without.instance_id} has no IPv6 address" in errors
    assert [line for line in errors if line.startswith(f"{PROG}: site ")] == [
        f"{PROG}: site {SITE}: instance {without.instance_id} has no IPv6 address"]
    assert snapshot(tmp_path / "out") == before  # no file rewritten, none half-written beside them
    assert with_ipv6.ipv6 not in before["ssh_config"].decode()

    # Not chosen (stopped), the instance troubles nobody.
    vpc.ec2.stop_instances(InstanceIds=[without.instance_id])
    assert main(["inventory", "-c", str(config), "--list"]) == 0
    assert capsys.readouterr().out.split() == [alias(with_ipv6)]
    assert ssh_resolve(tmp_path / "out" / "ssh_config", alias(with_ipv6))["hostname"] == with_ipv6.ipv6


# --- real ssh over IPv6, and the tag alias ------------------------------------------------------


@pytest.fixture
def hosts():
    """Real hosts on the VPC's IPv4 and IPv6 prefixes, every namespace, sshd and route gone after."""
    network = HostNetwork(VPC_CIDR, ipv6_cidr=IPV6_SUBNET)
    try:
        yield network
    finally:
        network.close()


def host_for(network: HostNetwork, instance: Launched) -> SshHost:
    """The instance as a real machine: a host at each address moto gave it."""
    return network.add_host(instance.private_ip, ipv6=instance.ipv6)


def ssh(tmp_path: Path, name: str, command: str) -> subprocess.CompletedProcess[str]:
    """OpenSSH with only the generated config; no agent, no user's known_hosts."""
    config = tmp_path / "out" / "ssh_config"
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    return subprocess.run(
        ["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
         "-o", "GlobalKnownHostsFile=/dev/null", name, command],
        capture_output=True, text=True, timeout=SSH_TIMEOUT_S, env=env)


def known_hosts(tmp_path: Path) -> dict[str, str]:
    """The managed known_hosts: name -> key type and key."""
    lines = (tmp_path / "out" / "known_hosts").read_text().splitlines()
    return {fields[0]: " ".join(fields[1:3]) for fields in map(str.split, lines) if fields}


def key_of(host: SshHost) -> str:
    return " ".join(host.host_key_pub.split()[:2])


@needs_real_hosts()
def test_address_ipv6_connects_over_ipv6_to_the_instances_host(aws, tmp_path, hosts):
    vpc = Ipv6Vpc(aws)
    instance = vpc.launch()
    host = host_for(hosts, instance)
    config = write_config(tmp_path, hosts, address="ipv6")
    assert main(["inventory", "-c", str(config)]) == 0

    result = ssh(tmp_path, alias(instance), 'echo "$SSH_CONNECTION"')

    assert result.returncode == 0, result.stderr
    client, _, server, port = result.stdout.split()
    assert (server, port) == (instance.ipv6, "22")  # the host's IPv6 address, not its IPv4 one
    assert ipaddress.ip_address(client) in ipaddress.IPv6Network(IPV6_SUBNET)
    assert known_hosts(tmp_path) == {alias(instance): key_of(host)}


def host_lines(tmp_path: Path) -> dict[str, list[str]]:
    """The generated config's Host lines: first name -> every name on the line."""
    lines = (tmp_path / "out" / "ssh_config").read_text().splitlines()
    names = [line.split()[1:] for line in lines if line.startswith("Host ")]
    return {found[0]: found for found in names}


def cap_list_sites(tmp_path: Path) -> dict[str, list[str]]:
    """Capistrano's own view of the servers file: site -> server hostnames."""
    project = tmp_path / "capistrano"
    shutil.copytree(READERS_DIR, project)
    result = run([need("cap"), CAP_STAGE, "list_sites"], cwd=project,
                 env={**os.environ, "CAP_CONFIG": str(tmp_path / "out" / "cap.yml")})
    listed = {}
    for line in result.stdout.splitlines():
        if line.startswith("site "):
            site, _, hostnames = line.removeprefix("site ").partition(":")
            listed[site] = hostnames.split()
    return listed


@needs_real_hosts()
def test_a_tag_alias_reaches_the_same_host_and_keeps_its_key_under_the_instance_alias(
        aws, tmp_path, hosts, capsys):
    marker = tmp_path / "tag-value-ran"
    vpc = Ipv6Vpc(aws)
    named = vpc.launch(Name="Web Front #1")
    hostile = vpc.launch(Name=f"x\n    ProxyCommand touch {marker}\nHost *")
    untagged = vpc.launch()
    machines = {i.instance_id: host_for(hosts, i) for i in (named, hostile, untagged)}
    config = write_config(tmp_path, hosts, alias_tag="Name")

    assert main(["inventory", "-c", str(config), "--list"]) == 0

    ids = sorted(alias(i) for i in (named, hostile, untagged))
    assert capsys.readouterr().out.split() == ids  # --list keeps the instance-id aliases
    lines = host_lines(tmp_path)
    named_alias = f"{SITE}-web-front-1-{named.instance_id[-5:]}"
    assert lines[alias(named)] == [alias(named), named_alias]
    assert lines[alias(untagged)] == [alias(untagged)]
    hostile_alias = lines[alias(hostile)][1]
    assert len(lines[alias(hostile)]) == 2 and hostile_alias.startswith(f"{SITE}-x-proxycommand-touch-")
    # The tag's newline, ProxyCommand and `Host *` became one word of the Host line, no directive.
    assert len(lines) == 3 and all(re.fullmatch(r"[a-z0-9_.-]+", name) for names in lines.values() for name in names)

    for instance, tag_alias in ((named, named_alias), (hostile, hostile_alias)):
        by_tag = ssh_resolve(tmp_path / "out" / "ssh_config", tag_alias)
        by_id = ssh_resolve(tmp_path / "out" / "ssh_config", alias(instance))
        assert (by_tag["hostname"], by_tag["hostkeyalias"]) == (instance.private_ip, alias(instance))
        assert {k: by_tag.get(k) for k in by_id if k != "host"} == {k: v for k, v in by_id.items() if k != "host"}
        assert "proxycommand" not in by_tag

        result = ssh(tmp_path, tag_alias, "ip -4 -o addr show eth0")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[3] == f"{instance.private_ip}/16"
    assert not marker.exists()
    assert known_hosts(tmp_path) == {alias(i): key_of(machines[i.instance_id]) for i in (named, hostile)}

    assert yaml.safe_load((tmp_path / "out" / "cap.yml").read_text())["sites"] == {SITE: ids}
    assert cap_list_sites(tmp_path) == {SITE: ids}
