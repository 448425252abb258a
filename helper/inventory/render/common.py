"""What every renderer shares: sites in a fixed order, refused duplicates, one YAML dialect.

A module of its own so the renderers import it and the package's __init__ imports them:
no circle of imports.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from helper.errors import OutputError
from helper.inventory.model import SiteInventory


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


# Wide enough that PyYAML never folds a value over two lines: one line per value
# keeps diffs of the written files to the hosts that changed.
_YAML_WIDTH = 1_000_000


# libyaml's emitter is about ten times faster than PyYAML's pure-Python one, which
# matters for inventories of thousands of hosts; the output is the same.
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class YamlDumper(_BaseDumper):
    """SafeDumper that never writes &anchors/*aliases, which some readers mishandle.

    A renderer that needs a tag of its reader (Ansible's !unsafe) subclasses it."""

    def ignore_aliases(self, data) -> bool:
        return True


def dump_yaml(document: dict, dumper: type[YamlDumper] = YamlDumper) -> str:
    """Block-style YAML with sorted keys; strings such as "yes" or "0123" are quoted."""
    return yaml.dump(
        document,
        Dumper=dumper,
        default_flow_style=False,
        sort_keys=True,
        width=_YAML_WIDTH,
    )
