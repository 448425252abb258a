"""The Ansible group a site or role becomes, so the config can refuse collisions when it loads.

A site and a role (or two sites) whose names differ only in characters Ansible rewrites
(`web-app` and `web_app`), or a role named `all`, would merge hosts in one Ansible group. The
Ansible renderer refused that only when an Ansible output was written (issue 24); the config now
refuses it when it loads, with the same rule, kept here once for both.
"""

from __future__ import annotations

import re

# Ansible warns about, and may rewrite, group names with other characters.
_INVALID_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_]")
# Names Ansible defines itself; a site or role of that name would merge into them.
RESERVED_GROUPS = frozenset({"all", "ungrouped"})


def group_name(name: str) -> str:
    """The Ansible group a site or role becomes: every character outside [A-Za-z0-9_] is `_`."""
    return _INVALID_GROUP_CHARS.sub("_", name)
