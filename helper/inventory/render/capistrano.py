"""Render the Capistrano servers file in the original 2014 tool's shape.

    sites:
      <site>: [<alias>, ...]

A stage file loads it and declares `server alias, ...` for each alias; Capistrano
(net-ssh) then resolves each alias through the ssh config (helper.inventory.render.ssh).
"""

from __future__ import annotations

from collections.abc import Sequence

from helper.inventory.model import SiteInventory
from helper.inventory.render.common import dump_yaml, ordered_sites


def render_capistrano(sites: Sequence[SiteInventory]) -> str:
    """`sites: {<site>: [<alias>, ...]}`; a site without hosts is `[]`."""
    return dump_yaml(
        {"sites": {s.site: [host.alias for host in s.hosts] for s in ordered_sites(sites)}}
    )
