"""Render an Ansible YAML inventory: a group per site and a group per role.

Ansible connects with its own ssh command line, not through our ssh config, so
each host carries the same host-key options (helper.inventory.render.ssh) in
ansible_ssh_common_args.

Ansible templates inventory values, so a `{{ lookup('pipe', ...) }}` in a user, a key path
or a host name would otherwise run a command on the controller. Every text host variable
that could hold a template (a `{`, `%` or `#`: Jinja's delimiters and Ansible's `#jinja2:`
override) is written `!unsafe`, which Ansible uses as it is, never templated. The others are
plain quoted text: ansible-core 2.19 reads a tagged scalar as if it were unquoted, so
`!unsafe 'yes'` would reach it as true and `!unsafe '0123'` as 83. The tags (`ec2_tags`),
set by anyone allowed to tag, are one `!unsafe` mapping, which every version reads as text.
"""

from __future__ import annotations

import re
import shlex
from collections import defaultdict
from collections.abc import Sequence

from helper.errors import OutputError
from helper.inventory.model import Host, SiteInventory
from helper.inventory.naming import RESERVED_GROUPS, group_name
from helper.inventory.render.common import dump_yaml, ordered_sites
from helper.inventory.render.ssh import config_value, key_checking_options, proxy_command

# hostvar -> how to read it from a Host; None values are left out.
_HOSTVARS = {
    "ansible_host": lambda h: h.address,
    "ansible_user": lambda h: h.user,
    "ansible_port": lambda h: h.port,
    "ansible_ssh_private_key_file": lambda h: h.identity_file,
    "ec2_instance_id": lambda h: h.instance.instance_id,
    "ec2_availability_zone": lambda h: h.instance.availability_zone,
    "ec2_private_ip": lambda h: h.instance.private_ip,
    "ec2_public_ip": lambda h: h.instance.public_ip,
    "ec2_private_dns": lambda h: h.instance.private_dns,
    "ec2_public_dns": lambda h: h.instance.public_dns,
    "ec2_state": lambda h: h.instance.state,
    # The membership source's word ("InService", "healthy", ...), not the EC2 state.
    "membership_status": lambda h: h.status,
    "tag_alias": lambda h: h.tag_alias,
    # Always a mapping, empty for an untagged host, so a play can read ec2_tags.Env as is.
    "ec2_tags": lambda h: _UnsafeTags(h.instance.tags),
}


# A text without these cannot start a Jinja block, expression, comment or override.
_TEMPLATE_CHARS = re.compile(r"[{}%#]")


class _Unsafe(str):
    """A host variable Ansible must take as text, never as a template."""


class _UnsafeTags(dict):
    """A host's tags: keys and values set by anyone allowed to tag, so none is a template."""


# Tagged values are always quoted (helper.inventory.render.yamltext). The tags are one `!unsafe`
# mapping of plain (quoted where needed) scalars, not a tag per scalar: ansible-core 2.19
# re-resolves a tagged scalar as if it were unquoted, so `!unsafe 'yes'` reads as true and
# `!unsafe ''` as null, while a tag value must stay the text EC2 holds. Both 2.19 and older cores
# make every key and value of a tagged mapping unsafe; older ones build it at once only because
# it holds no nested mapping.
_TAGS = {_Unsafe: "!unsafe", _UnsafeTags: "!unsafe"}


def option_value(keyword: str, value: str) -> str:
    # ssh reads `-o` like a config line: ProxyCommand's rest raw, the others config-quoted.
    return value if keyword == "ProxyCommand" else config_value(keyword, value)


def ssh_common_args(host: Host, known_hosts_file: str) -> str:
    """`-o` options for ssh, quoted for ssh (inner) and for shlex.split (outer).

    Ansible splits the string with shlex and ssh parses each `keyword=value` like
    a config line, so a path with spaces needs both layers.
    """
    options = key_checking_options(host, known_hosts_file)
    if host.proxy_jump:
        options.append(("ProxyJump", host.proxy_jump))
    if host.tunnel:
        options.append(("ProxyCommand", proxy_command(host.tunnel)))
    return " ".join(
        f"-o {shlex.quote(f'{keyword}={option_value(keyword, value)}')}"
        for keyword, value in options
    )


def _hostvars(host: Host, known_hosts_file: str) -> dict:
    hostvars = {name: read(host) for name, read in _HOSTVARS.items()}
    hostvars["ansible_ssh_common_args"] = ssh_common_args(host, known_hosts_file)
    return {
        name: _Unsafe(value) if isinstance(value, str) and _TEMPLATE_CHARS.search(value) else value
        for name, value in hostvars.items()
        if value is not None
    }


def _claim(owners: dict[str, str], name: str, owner: str) -> str:
    """Register group `name` for `owner`; two owners of one group would merge hosts."""
    group = group_name(name)
    if group in RESERVED_GROUPS:
        raise OutputError(f"{owner} cannot be an Ansible group: {group!r} is reserved")
    if owners.setdefault(group, owner) != owner:
        raise OutputError(
            f"{owner} and {owners[group]} would both be Ansible group {group!r}; rename one"
        )
    return group


def render_ansible(sites: Sequence[SiteInventory], known_hosts_file: str) -> str:
    """A YAML inventory: `all: children:` with a group per site and per role."""
    children: dict[str, dict] = {}
    owners: dict[str, str] = {}
    role_aliases: dict[str, list[str]] = defaultdict(list)
    for inventory in ordered_sites(sites):
        group = _claim(owners, inventory.site, f"site {inventory.site!r}")
        hosts = {h.alias: _hostvars(h, known_hosts_file) for h in inventory.hosts}
        # An empty site stays a group, so plays that target it match nothing
        # instead of failing on an unknown pattern.
        children[group] = {"hosts": hosts} if hosts else {}
        for host in inventory.hosts:
            for role in host.roles:
                role_aliases[role].append(host.alias)
    for role, aliases in role_aliases.items():
        group = _claim(owners, role, f"role {role!r}")
        children[group] = {"hosts": {alias: None for alias in aliases}}
    return dump_yaml({"all": {"children": children}}, tags=_TAGS)
