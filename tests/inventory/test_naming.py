"""helper/inventory/naming.py: aliases, tag aliases, tag roles, tunnels and addresses. Pure functions.

What ssh, Ansible and Capistrano make of these names is proved through those programs in
tests/inventory/test_transport.py, tests/inventory/test_host_choice.py and tests/inventory/test_ipv6_and_alias.py.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import pytest

from helper.config.document import SiteConfig, Source
from helper.errors import DiscoveryError
from helper.inventory.model import Instance, Membership, SiteInventory, Tunnel
from helper.inventory.naming import (
    TAG_ALIAS_MAX_CHARS,
    address,
    drop_clashing_tag_aliases,
    is_alias_of,
    name_hosts,
    tag_alias,
    tag_roles,
)

ID = "i-0123456789abcdef0"


def _instance(instance_id: str = ID, **tags: str) -> Instance:
    return Instance(instance_id, "running", private_ip="172.31.0.9", tags=tuple(sorted(tags.items())))


def _site(**options) -> SiteConfig:
    return SiteConfig(name="web", source=Source("auto_scaling_group", "web-asg"), **options)


def _in_service(*instances: Instance) -> list:
    return [(inst, Membership(inst.instance_id, True, "InService")) for inst in instances]


@pytest.mark.parametrize("value, expected", [
    ("Web 1", "web-web-1-def0"),
    ("checkout.API_v2", "web-checkout.api_v2-def0"),
    # Every character ssh, YAML or a shell could read otherwise becomes `-`.
    ("a\nProxyCommand touch /tmp/x", "web-a-proxycommand-touch-tmp-x-def0"),
    ("{{ lookup('pipe','id') }}", "web-lookup-pipe-id-def0"),
    ("*,!?#%\"' x", "web-x-def0"),
    ("\u2028café\u0085", "web-caf-def0"),
    ("..--x--..", "web-x-def0"),
])
def test_a_tag_alias_keeps_only_lower_case_letters_digits_dot_dash_and_underscore(value, expected):
    inst = _instance(Name=value)
    alias = tag_alias("web", inst, "Name")
    assert alias == expected.replace("def0", "cdef0")
    assert re.fullmatch(r"[a-z0-9_.-]+", alias.removeprefix("web-"))


@pytest.mark.parametrize("value", ["", "   ", "%%%", "\n", "--..--"])
def test_a_tag_value_with_nothing_usable_gives_no_tag_alias(value):
    assert tag_alias("web", _instance(Name=value), "Name") is None


def test_a_host_without_the_tag_has_no_tag_alias():
    assert tag_alias("web", _instance(Env="prod"), "Name") is None


def test_a_long_tag_value_is_cut_and_never_ends_in_a_dash():
    alias = tag_alias("web", _instance(Name="a" * 31 + "-" + "b" * 40), "Name")
    word = alias[len("web-"):-len("-cdef0")]
    assert len(word) <= TAG_ALIAS_MAX_CHARS and not word.endswith("-")


def test_a_tag_alias_is_never_an_instance_id_alias():
    # `<site>-i-<5 hex>` is not `<site>-<instance id>`: those have 8 or 17 hex digits.
    alias = tag_alias("web", _instance("i-0123abcd", Name="i"), "Name")
    assert alias == "web-i-3abcd" and not is_alias_of("web", alias)


def test_tag_roles_are_the_comma_separated_values_and_odd_ones_are_skipped_with_a_warning(caplog):
    inst = _instance(Roles=" app,db , ,{{x}},a b,worker.v2,-opt")
    with caplog.at_level(logging.WARNING):
        assert tag_roles(inst, "Roles") == ("app", "db", "worker.v2")
    assert caplog.text.count("event=tag_role_ignored") == 3
    assert "{{x}}" in caplog.text and ID in caplog.text


def test_hosts_get_site_roles_then_their_tag_roles_once_each():
    site = _site(roles=("web", "app"), roles_from_tag="Roles")
    a, b = _instance(Roles="db,app"), _instance("i-0123456789abcdef1")
    hosts = name_hosts(site, _in_service(a, b)).hosts
    assert [h.roles for h in hosts] == [("web", "app", "db"), ("web", "app")]


def test_a_tunnel_site_addresses_hosts_by_instance_id_with_the_discovery_profile():
    site = _site(transport="eice", instance_connect_endpoint_id="eice-0123456789abcdef0", region="eu-west-1")
    (host,) = name_hosts(site, _in_service(Instance(ID, "running")), profile="ops").hosts
    assert host.address == ID  # no address needed at all: the tunnel goes by id
    assert host.tunnel == Tunnel("eice", "eu-west-1", "ops", "eice-0123456789abcdef0")
    assert name_hosts(_site(), _in_service(_instance())).hosts[0].tunnel is None


def test_address_ipv6_is_the_first_ipv6_address_and_a_host_without_one_is_an_error():
    assert address(Instance(ID, "running", ipv6="2001:db8::5"), "ipv6") == "2001:db8::5"
    with pytest.raises(DiscoveryError, match=f"instance {ID} has no IPv6 address"):
        address(_instance(), "ipv6")


def test_clashing_tag_aliases_are_dropped_everywhere_and_the_instance_aliases_stay(caplog):
    # Site web tagged "a-b" and site web-a tagged "b", same id tail: both are web-a-b-cdef0.
    web = name_hosts(_site(alias_tag="Name"), _in_service(_instance(Name="a-b")))
    web_a_site = SiteConfig(name="web-a", source=Source("tags", {}), alias_tag="Name")
    web_a = name_hosts(web_a_site, _in_service(_instance("i-1111111111111cdef0", Name="b")))
    unique = name_hosts(_site(alias_tag="Name"), _in_service(_instance("i-2222222222222aaaa1", Name="c")))
    assert web.hosts[0].tag_alias == web_a.hosts[0].tag_alias == "web-a-b-cdef0"
    with caplog.at_level(logging.WARNING):
        result = drop_clashing_tag_aliases([web, web_a, unique])
    assert [h.tag_alias for inv in result for h in inv.hosts] == [None, None, "web-c-aaaa1"]
    assert [h.alias for inv in result for h in inv.hosts] == [f"web-{ID}", "web-a-i-1111111111111cdef0",
                                                              "web-i-2222222222222aaaa1"]
    assert caplog.text.count("event=tag_alias_dropped") == 2


def test_a_tag_alias_equal_to_another_hosts_instance_alias_is_dropped():
    # Not possible with aliases from naming (see above), but the rule does not rely on that.
    inv = name_hosts(_site(alias_tag="Name"), _in_service(_instance(Name="n")))
    other = SiteInventory("x", (replace(inv.hosts[0], site="x", alias="web-n-cdef0", tag_alias=None),))
    result = drop_clashing_tag_aliases([inv, other])
    assert result[0].hosts[0].tag_alias is None and result[1].hosts[0].alias == "web-n-cdef0"


def test_a_tag_role_that_would_be_a_sites_or_ansibles_own_group_is_skipped(caplog):
    inst = _instance(Roles="api,API,api.v2,all,ungrouped,web,db")
    with caplog.at_level(logging.WARNING):
        # api.v2 is group api_v2; a role named like the host's own site would merge into it too.
        assert tag_roles(inst, "Roles", ["web", "api", "api_v2"]) == ("API", "db")
    assert caplog.text.count("is a site's or Ansible's own") == 5
