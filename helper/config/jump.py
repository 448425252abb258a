"""A proxy_jump value's hops, checked once, when the config loads (and again where ssh's config is written).

ssh and net-ssh paste a hop's user, host and port into a shell command (the jump's
ProxyCommand), so each part is held to the characters of a name. Checked at load, a hostile or
mistyped hop (`h;id`, `-oProxyCommand=id`, `user@h:99999`) is one line naming the file, line and
key (issue 24); it used to pass the config and fail only when an output was written.
"""

from __future__ import annotations

import re

from helper.config.fields import LOGIN_NAME_RE

# One hop of a ProxyJump chain as ssh_config(5) spells it: [ssh://][user@]host[:port],
# an IPv6 address in brackets.
_JUMP_HOP = re.compile(
    r"(?:ssh://)?(?:(?P<user>[^@]*)@)?"
    r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*))"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# ProxyJump's word for "no jump" (ssh_config(5)).
NO_JUMP = "none"


def jump_hops(proxy_jump: str) -> list[str]:
    """The host names of a ProxyJump value's hops, in order; ValueError naming the first bad hop."""
    if proxy_jump.strip().lower() == NO_JUMP:
        return []
    names = []
    for hop in proxy_jump.split(","):
        parsed = _JUMP_HOP.fullmatch(hop)
        user = parsed and parsed["user"]
        port = parsed and parsed["port"]
        name = parsed and (parsed["ipv6"] or parsed["host"])
        if (not parsed or not name or (not parsed["ipv6"] and not _HOST_NAME.fullmatch(name))
                or (user is not None and not LOGIN_NAME_RE.fullmatch(user))
                or (port is not None and not 0 < int(port) < 65536)):
            raise ValueError(f"proxy_jump hop {hop!r} is not [user@]host[:port]"
                             " (a login name, a host name or address, a port 1-65535)")
        names.append(name.lower())  # ssh matches Host patterns against the lowercased name
    return names
