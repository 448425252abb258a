"""Turn inventories into the files and stdout text the settings ask for, then write them.

plan() reads what is on disk (for the managed ssh block and known_hosts pruning) and
returns every file's new text; apply() writes them, or shows diffs in a dry run. Writing
happens only after every file was planned, so a failure while planning writes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, TextIO

from helper.errors import OutputError
from helper.model import SiteInventory
from helper.naming import is_alias_of
from helper.render.ansible import render_ansible
from helper.render.capistrano import render_capistrano
from helper.render.json_out import render_json
from helper.render.listing import render_list
from helper.render.ssh import render_ssh_config
from helper.settings import Outputs
from helper.write import merge_managed_block, prune_known_hosts, unified_diff, write_atomic

# ssh refuses a config or known_hosts file that others can write; the inventories
# name internal addresses, which is no reason to make them world-readable either.
PRIVATE_MODE = 0o600
SHARED_MODE = 0o644


@dataclass(frozen=True)
class Planned:
    path: str
    old: str | None
    new: str
    mode: int

    @property
    def changed(self) -> bool:
        return self.old != self.new


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"{path}: cannot read: {exc}") from None


def _file(path: str, new: str, mode: int) -> Planned:
    path = os.path.expanduser(path)
    return Planned(path, _read(path), new, mode)


def plan(outputs: Outputs, sites: Sequence[SiteInventory]) -> list[Planned]:
    planned: list[Planned] = []
    if outputs.ssh_config_file:
        body = render_ssh_config(sites, outputs.known_hosts_file)
        path = os.path.expanduser(outputs.ssh_config_file)
        old = _read(path)
        new = merge_managed_block(old, body, path=path) if outputs.ssh_config_mode == "block" else body
        planned.append(Planned(path, old, new, PRIVATE_MODE))
        planned.extend(_prune_known_hosts(outputs.known_hosts_file, sites))
    if outputs.cap_config_file:
        planned.append(_file(outputs.cap_config_file, render_capistrano(sites), SHARED_MODE))
    if outputs.ansible_inventory_file:
        planned.append(_file(outputs.ansible_inventory_file, render_ansible(sites, outputs.known_hosts_file), SHARED_MODE))
    if outputs.json_file and outputs.json_file != "-":
        planned.append(_file(outputs.json_file, render_json(sites), SHARED_MODE))
    return planned


def _prune_known_hosts(known_hosts_file: str, sites: Sequence[SiteInventory]) -> list[Planned]:
    """Forget host keys of instances that left these sites (their ids never come back)."""
    path = os.path.expanduser(known_hosts_file)
    old = _read(path)
    if old is None:
        return []
    live = {h.alias for s in sites for h in s.hosts}
    names = [s.site for s in sites]
    new = prune_known_hosts(old, live, lambda host: any(is_alias_of(n, host) for n in names))
    return [Planned(path, old, new, PRIVATE_MODE)] if new != old else []


def stdout_text(outputs: Outputs, sites: Sequence[SiteInventory]) -> str:
    parts = []
    if outputs.json_file == "-":
        parts.append(render_json(sites))
    if outputs.list_hosts:
        parts.append(render_list(sites))
    return "".join(parts)


def apply(planned: list[Planned], dry_run: bool, out: TextIO) -> list[str]:
    """Write changed files (or print their diffs); returns the paths that changed."""
    changed = [p for p in planned if p.changed]
    for p in changed:
        if dry_run:
            out.write(unified_diff(p.path, p.old, p.new))
        else:
            write_atomic(p.path, p.new, mode=p.mode)
    return [p.path for p in changed]
