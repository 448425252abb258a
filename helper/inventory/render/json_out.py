"""Render every host of every site as JSON, for scripts and other tools."""

from __future__ import annotations

import json
from collections.abc import Sequence

from helper.inventory.model import Host, SiteInventory
from helper.inventory.render.common import ordered_sites

# field -> how to read it from a Host. Unset values stay as null, so every host
# object has the same keys and consumers need no existence checks.
_FIELDS = {
    "alias": lambda h: h.alias,
    "instance_id": lambda h: h.instance.instance_id,
    "address": lambda h: h.address,
    "user": lambda h: h.user,
    "port": lambda h: h.port,
    "identity_file": lambda h: h.identity_file,
    "proxy_jump": lambda h: h.proxy_jump,
    "roles": lambda h: sorted(h.roles),
    "status": lambda h: h.status,
    "private_ip": lambda h: h.instance.private_ip,
    "public_ip": lambda h: h.instance.public_ip,
    "private_dns": lambda h: h.instance.private_dns,
    "public_dns": lambda h: h.instance.public_dns,
    "availability_zone": lambda h: h.instance.availability_zone,
    # Every tag as EC2 gave it: json.dumps escapes what a reader could trip on (control
    # characters, U+2028), so a hostile value stays one string.
    "tags": lambda h: dict(h.instance.tags),
    "tag_alias": lambda h: h.tag_alias,
}


def _host_object(host: Host) -> dict:
    return {name: read(host) for name, read in _FIELDS.items()}


def render_json(sites: Sequence[SiteInventory]) -> str:
    """`{"sites": {site: [host, ...]}}`, indent 2, sorted keys, trailing newline."""
    document = {
        "sites": {s.site: [_host_object(h) for h in s.hosts] for s in ordered_sites(sites)}
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
