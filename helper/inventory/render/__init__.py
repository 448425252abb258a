"""Render: SiteInventory values in, the text of one output file out.

Every renderer is a pure function with the same contract: sites and hosts are
sorted, nothing depends on the clock or on dict order, so the same inventory
always gives byte-identical text and helper.files.write can leave unchanged files alone.
"""

from __future__ import annotations

from helper.inventory.render.ansible import render_ansible
from helper.inventory.render.capistrano import render_capistrano
from helper.inventory.render.common import dump_yaml, ordered_sites
from helper.inventory.render.json_out import render_json
from helper.inventory.render.listing import render_list
from helper.inventory.render.ssh import render_ssh_config

__all__ = [
    "dump_yaml",
    "ordered_sites",
    "render_ansible",
    "render_capistrano",
    "render_json",
    "render_list",
    "render_ssh_config",
]
