"""What every renderer shares: sites in a fixed order, refused duplicates, one YAML writer.

A module of its own so the renderers import it and the package's __init__ imports them:
no circle of imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from helper.errors import OutputError
from helper.inventory.model import SiteInventory
from helper.inventory.render import yamltext


def ordered_sites(sites: Sequence[SiteInventory]) -> list[SiteInventory]:
    """The sites sorted by name, each with its hosts sorted by alias.

    Refuses duplicates rather than guessing: two inventories for one site would
    collapse into one YAML/JSON key, and two Host sections for one alias would let
    ssh silently use the first.
    """
    seen_sites: set[str] = set()
    seen_aliases: dict[str, str] = {}
    ordered = []
    for inventory in sorted(sites, key=lambda s: s.site):
        if inventory.site in seen_sites:
            raise OutputError(f"site {inventory.site!r} appears twice in the inventory")
        seen_sites.add(inventory.site)
        hosts = tuple(sorted(inventory.hosts, key=lambda h: h.alias))
        for host in hosts:
            if host.alias in seen_aliases:
                raise OutputError(
                    f"host alias {host.alias!r} is used by site {seen_aliases[host.alias]!r}"
                    f" and site {inventory.site!r}"
                )
            seen_aliases[host.alias] = inventory.site
        ordered.append(SiteInventory(site=inventory.site, hosts=hosts))
    return ordered


def dump_yaml(document: dict, tags: Mapping[type, str] | None = None) -> str:
    """Block-style YAML with sorted keys; strings such as "yes" or "0123" are quoted.

    Written as text (helper.inventory.render.yamltext), one line per value, so diffs of the
    written files show only the hosts that changed.
    """
    return yamltext.dump(document, tags)
