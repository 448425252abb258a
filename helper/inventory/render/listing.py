"""Render the plain list of host aliases, for shell loops (`for h in $(...)`)."""

from __future__ import annotations

from collections.abc import Sequence

from helper.inventory.model import SiteInventory
from helper.inventory.render.common import ordered_sites


def render_list(sites: Sequence[SiteInventory]) -> str:
    """One alias per line, sites in name order, hosts in alias order."""
    return "".join(f"{host.alias}\n" for s in ordered_sites(sites) for host in s.hosts)
