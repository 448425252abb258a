"""Name and address each chosen instance. Pure functions.

An alias is `<site>-<instance id>`: it always means the same machine (instance ids are
never reused), so host keys can stay checked and a scale-out never renames a host.
"""

from __future__ import annotations

from collections.abc import Iterable

from helper.aws.names import is_instance_id
from helper.config.document import SiteConfig
from helper.errors import DiscoveryError
from helper.inventory.model import Host, Instance, Membership, SiteInventory


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


def _private(inst: Instance) -> str | None:
    return inst.private_ip or inst.private_dns


def _public(inst: Instance) -> str | None:
    return inst.public_ip or inst.public_dns


# address preference -> how to pick an address, in order of preference
ADDRESS_PICKERS = {
    "private": (_private,),
    "public": (_public,),
    "auto": (_public, _private),
}


def address(inst: Instance, preference: str) -> str:
    for pick in ADDRESS_PICKERS[preference]:
        found = pick(inst)
        if found:
            return found
    raise DiscoveryError(f"instance {inst.instance_id} has no {preference} address")


def name_hosts(site: SiteConfig, chosen: list[tuple[Instance, Membership]]) -> SiteInventory:
    hosts = tuple(
        Host(
            site=site.name,
            alias=alias(site.name, inst.instance_id),
            address=address(inst, site.address),
            instance=inst,
            status=member.status,
            user=site.user,
            port=site.port,
            identity_file=site.identity_file,
            proxy_jump=site.proxy_jump,
            roles=site.roles,
        )
        for inst, member in chosen
    )
    return SiteInventory(site=site.name, hosts=tuple(sorted(hosts, key=lambda h: h.alias)))
