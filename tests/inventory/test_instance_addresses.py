"""Issue 9 item 20: what EC2 says about an instance is checked where it is read. Pure functions."""

from __future__ import annotations

import pytest

from helper.errors import DiscoveryError
from helper.inventory.discover import instance_from_ec2, is_dns_name, is_ip_address
from helper.inventory.model import Membership
from helper.inventory.selection import Selection, select


@pytest.mark.parametrize("text, ok", [
    ("10.0.0.1", True), ("54.1.2.3", True), ("2001:db8::1", True),
    ("10.0.0.1\n", False), (" 10.0.0.1", False), ("10.0.0.1\nHost *", False), ("010.0.0.1", False),
    ("fe80::1%eth0", False),  # a scope id may hold any character
    ("10.0.0", False), ("ip-10-0-0-1", False), ("", False),
])
def test_ip_addresses_are_checked_whole(text, ok):
    assert is_ip_address(text) is ok


@pytest.mark.parametrize("text, ok", [
    ("ip-10-0-0-1.ec2.internal", True), ("ec2-54-1-2-3.compute-1.amazonaws.com", True),
    ("ip-10-0-0-1.eu-west-1.compute.internal.", True), ("a" * 63 + ".example", True),
    ("ip-10-0-0-1\nHost *.ec2.internal", False), ("ip-10-0-0-1.ec2.internal\n", False),
    ("-ip.internal", False), ("ip-.internal", False), ("a..b", False), ("a b.internal", False),
    ("a" * 64 + ".example", False), (".".join(["abcdefg"] * 32), False), ("", False),
    ("{{x}}.internal", False), ("host%h.internal", False),
])
def test_dns_names_are_checked_label_by_label(text, ok):
    assert is_dns_name(text) is ok


RAW = {"InstanceId": "i-0123456789abcdef0", "State": {"Name": "running"}, "PrivateIpAddress": "10.0.0.1",
       "PrivateDnsName": "ip-10-0-0-1.ec2.internal", "PublicIpAddress": "", "PublicDnsName": ""}


@pytest.mark.parametrize("field, value, problem", [
    ("PrivateIpAddress", "10.0.0.1\nHost *", "private IP address '10.0.0.1\\nHost *' is not valid"),
    ("PublicIpAddress", "54.1.2.3 ", "public IP address '54.1.2.3 ' is not valid"),
    ("PrivateDnsName", "ip\n.internal", "private DNS name 'ip\\n.internal' is not valid"),
    ("PublicDnsName", "a b", "public DNS name 'a b' is not valid"),
    ("InstanceId", "i-0abc\n", "instance id 'i-0abc\\n' is not valid"),
])
def test_an_odd_value_from_ec2_makes_the_instance_unusable(field, value, problem):
    assert instance_from_ec2(RAW).problem is None
    assert instance_from_ec2({**RAW, field: value}).problem == problem


def test_selecting_an_unusable_instance_names_it():
    good = instance_from_ec2(RAW)
    odd = instance_from_ec2({**RAW, "InstanceId": "i-0123456789abcdef1", "PrivateIpAddress": "10.0.0.2\n"})
    members = (Membership(good.instance_id, True, "InService"), Membership(odd.instance_id, True, "InService"))
    with pytest.raises(DiscoveryError, match=r"^instance i-0123456789abcdef1: private IP address '10.0.0.2\\n'"):
        select(members, {good.instance_id: good, odd.instance_id: odd}, Selection())
    # Not chosen (out of service), it troubles nobody.
    members = (members[0], Membership(odd.instance_id, False, "OutOfService"))
    assert [inst for inst, _ in select(members, {good.instance_id: good, odd.instance_id: odd}, Selection())] == [good]
