"""Render the Capistrano servers file in the original 2014 tool's shape, plus each host's roles.

    sites:
      <site>: [<alias>, ...]
    roles:                      # only when some host has roles
      <alias>: [<role>, ...]

A stage file loads it and declares `server alias, roles: <its roles, else app and web>` for
each alias; Capistrano (net-ssh) then resolves each alias through the ssh config
(helper.inventory.render.ssh). The roles sit beside the 2014 key, not inside it, so a stage
file written for the old shape still reads the same aliases.
"""

from __future__ import annotations

from collections.abc import Sequence

from helper.inventory.model import SiteInventory
from helper.inventory.render.common import dump_yaml, ordered_sites


def render_capistrano(sites: Sequence[SiteInventory]) -> str:
    """`sites: {<site>: [<alias>, ...]}`; a site without hosts is `[]`. `roles: {<alias>:
    [<role>, ...]}` (sorted, as in the JSON) for the hosts that have any: the site's roles and
    those of its roles_from_tag tag."""
    ordered = ordered_sites(sites)
    text = dump_yaml({"sites": {s.site: [host.alias for host in s.hosts] for s in ordered}})
    roles = {host.alias: sorted(host.roles) for s in ordered for host in s.hosts if host.roles}
    # Dumped on its own so `sites:` stays first, as in every file written before roles were.
    return text + dump_yaml({"roles": roles}) if roles else text
