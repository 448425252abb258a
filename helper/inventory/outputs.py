"""Turn inventories into the files and stdout text the settings ask for, then write them.

plan() reads what is on disk (for the managed ssh block and known_hosts pruning) and
returns every file's new text; apply() writes them all or none (helper.files.write.write_all), or
shows diffs in a dry run. Nothing is written until every file was planned and staged, so a
failure anywhere leaves every output as it was.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence, TextIO

from helper.files.safepath import read_text
from helper.files.write import NewFile, merge_managed_block, prune_known_hosts, unified_diff, write_all
from helper.inventory.model import SiteInventory
from helper.inventory.naming import is_alias_of
from helper.inventory.render.ansible import render_ansible
from helper.inventory.render.capistrano import render_capistrano
from helper.inventory.render.json_out import render_json
from helper.inventory.render.listing import render_list
from helper.inventory.render.ssh import render_ssh_config
from helper.inventory.sshcheck import weakened_host_key_checking
from helper.settings import Outputs

log = logging.getLogger(__name__)

# ssh refuses a config or known_hosts file that others can write, and neither is anyone
# else's business. (The host lists' mode is Outputs.host_list_mode, 0600 unless configured.)
PRIVATE_MODE = 0o600


@dataclass(frozen=True)
class Planned:
    path: str
    old: str | None
    new: str
    mode: int

    @property
    def changed(self) -> bool:
        return self.old != self.new


def _file(path: str, new: str, mode: int) -> Planned:
    path = os.path.expanduser(path)
    return Planned(path, read_text(path), new, mode)


def plan(outputs: Outputs, sites: Sequence[SiteInventory]) -> list[Planned]:
    planned: list[Planned] = []
    if outputs.ssh_config_file:
        planned.append(_ssh_config(outputs, sites))
        if outputs.prune_known_hosts:
            planned.extend(_prune_known_hosts(outputs, sites))
    if outputs.cap_config_file:
        planned.append(_file(outputs.cap_config_file, render_capistrano(sites), outputs.host_list_mode))
    if outputs.ansible_inventory_file:
        text = render_ansible(sites, outputs.known_hosts_file)
        planned.append(_file(outputs.ansible_inventory_file, text, outputs.host_list_mode))
    if outputs.json_file and outputs.json_file != "-":
        planned.append(_file(outputs.json_file, render_json(sites), outputs.host_list_mode))
    return planned


def _ssh_config(outputs: Outputs, sites: Sequence[SiteInventory]) -> Planned:
    body = render_ssh_config(sites, outputs.known_hosts_file)
    path = os.path.expanduser(outputs.ssh_config_file)
    old = read_text(path)
    if outputs.ssh_config_mode != "block":
        return Planned(path, old, body, PRIVATE_MODE)
    new = merge_managed_block(old, body, path=path)
    # The user's own text around the block can switch checking off for our hosts.
    for warning in weakened_host_key_checking(new, path):
        log.warning("event=host_key_checking_weakened problem=%s", warning)
    return Planned(path, old, new, PRIVATE_MODE)


def _prune_known_hosts(outputs: Outputs, sites: Sequence[SiteInventory]) -> list[Planned]:
    """Forget host keys of instances that left these sites (their ids never come back)."""
    path = os.path.expanduser(outputs.known_hosts_file)
    old = read_text(path)
    if old is None:
        return []
    live = {h.alias for s in sites for h in s.hosts}
    names = [s.site for s in sites]
    every_site = outputs.site_names or names
    new = prune_known_hosts(old, live, lambda host: any(is_alias_of(n, host, every_site) for n in names))
    return [Planned(path, old, new, PRIVATE_MODE)] if new != old else []


def stdout_text(outputs: Outputs, sites: Sequence[SiteInventory]) -> str:
    parts = []
    if outputs.json_file == "-":
        parts.append(render_json(sites))
    if outputs.list_hosts:
        parts.append(render_list(sites))
    return "".join(parts)


def apply(planned: list[Planned], dry_run: bool, out: TextIO) -> list[str]:
    """Write every file, or none (or print the diffs); returns the paths that changed.

    Unchanged files go to write_all too, so a mode left wrong by an older version is fixed.
    """
    if dry_run:
        changed = [p for p in planned if p.changed]
        for p in changed:
            out.write(unified_diff(p.path, p.old, p.new))
        return [p.path for p in changed]
    return write_all([NewFile(p.path, p.new, p.mode) for p in planned])
