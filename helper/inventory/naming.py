"""Name and address each chosen instance. Pure functions.

An alias is `<site>-<instance id>`: it always means the same machine (instance ids are
never reused), so host keys can stay checked and a scale-out never renames a host.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from dataclasses import replace

from helper.aws.names import is_instance_id
from helper.config.document import SiteConfig
from helper.config.fields import NAME_RE
from helper.config.groups import RESERVED_GROUPS, group_name  # noqa: F401 - renderers import them from here
from helper.errors import DiscoveryError
from helper.inventory.model import Host, Instance, Membership, SiteInventory, Tunnel

log = logging.getLogger(__name__)

# A tag alias keeps these characters of the tag's value; every run of others becomes one `-`.
# Lower case, because ssh matches Host names without case and net-ssh with it.
_NOT_ALIAS_CHARS = re.compile(r"[^a-z0-9_.]+")
# Enough to tell hosts apart by eye; the alias stays one short word.
TAG_ALIAS_MAX_CHARS = 32
# The id's tail that keeps two hosts with one tag value apart.
TAG_ALIAS_ID_CHARS = 5



def alias(site: str, instance_id: str) -> str:
    return f"{site}-{instance_id}"


def is_alias_of(site: str, name: str, sites: Iterable[str] = ()) -> bool:
    """True when `name` is exactly `<site>-<instance id>` and no other of `sites` could own it.

    Used to prune known_hosts: a prefix test would let `--site web` drop the keys of a site
    named `web-i` (its aliases start `web-i-i-...`).
    """
    return _named_for(site, name) and not any(_named_for(other, name) for other in sites if other != site)


def _named_for(site: str, name: str) -> bool:
    prefix = f"{site}-"
    return name.startswith(prefix) and is_instance_id(name[len(prefix):])


def tag_alias(site: str, instance: Instance, tag: str) -> str | None:
    """`<site>-<tag value>-<last 5 of the instance id>`, the value sanitized; None without one.

    Anyone allowed to tag instances sets the value, so it keeps only [a-z0-9_.-]: no space,
    newline, `%`, quote or pattern character reaches the ssh config's Host line. It can never
    equal an instance-id alias: those end in 8 or 17 hex digits after `i-`, this in `-` and 5.
    """
    value = dict(instance.tags).get(tag)
    if value is None:
        return None
    word = _NOT_ALIAS_CHARS.sub("-", value.lower()).strip("-.")[:TAG_ALIAS_MAX_CHARS].strip("-.")
    if not word:
        return None
    return f"{site}-{word}-{instance.instance_id[-TAG_ALIAS_ID_CHARS:]}"


@functools.lru_cache(maxsize=8)
def _taken_groups(site_names: frozenset[str]) -> frozenset[str]:
    # Once per run, not per host: name_hosts passes the same frozenset for every host.
    return frozenset(group_name(name) for name in site_names) | RESERVED_GROUPS


def tag_roles(instance: Instance, tag: str, site_names: Iterable[str] = ()) -> tuple[str, ...]:
    """The roles a host's tag names (comma-separated).

    Anyone allowed to tag sets them, so a value that is not a role name, or that would be the
    Ansible group of a site (or `all`), is left out with a warning: one odd tag must not fail
    the outputs of every site, nor merge its host into another site's group. Roles written in
    the config are checked when it is read and fail loudly instead.
    """
    taken = _taken_groups(frozenset(site_names))
    value = dict(instance.tags).get(tag)
    roles = []
    for part in (value or "").split(","):
        role = part.strip()
        if not role:
            continue
        if not NAME_RE.fullmatch(role):
            reason = f"not a role name ({NAME_RE.pattern})"
        elif group_name(role) in taken:
            reason = f"Ansible group {group_name(role)!r} is a site's or Ansible's own"
        else:
            roles.append(role)
            continue
        log.warning("event=tag_role_ignored instance=%s tag=%s value=%r reason=%s",
                    instance.instance_id, tag, role, reason)
    return tuple(roles)


def _private(inst: Instance) -> str | None:
    return inst.private_ip or inst.private_dns


def _public(inst: Instance) -> str | None:
    return inst.public_ip or inst.public_dns


# address preference -> how to pick an address, in order of preference
ADDRESS_PICKERS = {
    "private": (_private,),
    "public": (_public,),
    "auto": (_public, _private),
    "ipv6": (lambda inst: inst.ipv6,),
}

# How each preference is named in "has no ... address".
_ADDRESS_WORDS = {"ipv6": "IPv6"}


def address(inst: Instance, preference: str) -> str:
    for pick in ADDRESS_PICKERS[preference]:
        found = pick(inst)
        if found:
            return found
    raise DiscoveryError(f"instance {inst.instance_id} has no {_ADDRESS_WORDS.get(preference, preference)} address")


def tunnel(site: SiteConfig, profile: str | None) -> Tunnel | None:
    """The `aws` CLI tunnel a site's transport needs, with the site's region and profile."""
    if site.transport == "ssh":
        return None
    return Tunnel(site.transport, site.region, profile, site.instance_connect_endpoint_id)


def _host(site: SiteConfig, inst: Instance, member: Membership, via: Tunnel | None,
          site_names: frozenset[str]) -> Host:
    roles = site.roles + (tag_roles(inst, site.roles_from_tag, site_names) if site.roles_from_tag else ())
    return Host(
        site=site.name,
        alias=alias(site.name, inst.instance_id),
        # A tunnel is opened to the instance by id, never by an address.
        address=inst.instance_id if via else address(inst, site.address),
        instance=inst,
        status=member.status,
        user=site.user,
        port=site.port,
        identity_file=site.identity_file,
        proxy_jump=site.proxy_jump,
        roles=tuple(dict.fromkeys(roles)),
        tunnel=via,
        tag_alias=tag_alias(site.name, inst, site.alias_tag) if site.alias_tag else None,
    )


def name_hosts(site: SiteConfig, chosen: list[tuple[Instance, Membership]],
               profile: str | None = None, site_names: Iterable[str] = ()) -> SiteInventory:
    """Name and address every chosen instance.

    `profile` is the one discovery used, which a tunnel's `aws` command must use too;
    `site_names` are every configured site's, which no tag role may take as its group.
    """
    via = tunnel(site, profile)
    names = frozenset(site_names) | {site.name}
    hosts = tuple(_host(site, inst, member, via, names) for inst, member in chosen)
    return SiteInventory(site=site.name, hosts=tuple(sorted(hosts, key=lambda h: h.alias)))


def drop_clashing_tag_aliases(inventories: Iterable[SiteInventory]) -> list[SiteInventory]:
    """Every inventory, with each tag alias that is not unique across all hosts removed.

    Two hosts can share one (same value, same id tail; or site `web` tagged `a-b` and site
    `web-a` tagged `b`), and a shared Host name would send ssh to whichever comes first.
    The instance-id alias always remains, so a clash costs readability, never a deploy.
    """
    inventories = list(inventories)
    count: dict[str, int] = {}
    for name in (n for inv in inventories for h in inv.hosts for n in (h.alias, h.tag_alias) if n):
        count[name] = count.get(name, 0) + 1
    clashing = {name for name, n in count.items() if n > 1}
    if not clashing:
        return inventories
    result = []
    for inv in inventories:
        hosts = []
        for host in inv.hosts:
            if host.tag_alias in clashing:
                log.warning("event=tag_alias_dropped site=%s host=%s alias=%s reason=%s",
                            host.site, host.alias, host.tag_alias, "another host has the same alias")
                host = replace(host, tag_alias=None)
            hosts.append(host)
        result.append(SiteInventory(inv.site, tuple(hosts)))
    return result
