"""Does a user's ssh config switch host-key checking off for the hosts in our managed block?

ssh_config(5): "for each parameter, the first obtained value will be used". Our block sets
`StrictHostKeyChecking accept-new` and our own `UserKnownHostsFile` for each host, but a
user's global option, `Host *` (or any pattern matching our aliases) or `Match` section
ABOVE the block is read first and wins. `StrictHostKeyChecking no` then silently accepts
any key, and `UserKnownHostsFile /dev/null` forgets every key it accepted. Nothing fails;
only a warning can tell. (tests/inventory/test_sshcheck.py checks every case against `ssh -G`.)

Not followed: `Include` files, and `Match` criteria, which are taken to match (a warning
too many is better than a silent gap).
"""

from __future__ import annotations

import os
import re
import shlex

from helper.files.write import BEGIN, END

# keyword (lower case) -> values that leave our hosts' keys unchecked. OpenSSH reads `no`,
# `off` and `false` alike as "accept any key" (`ssh -G -o StrictHostKeyChecking=false` prints
# false); a known-hosts path is compared once normalised (`/dev/./null`, `//dev/null`, a link).
WEAKENING = {
    "stricthostkeychecking": frozenset({"no", "off", "false"}),
    "userknownhostsfile": frozenset({"/dev/null", "none"}),
}


def _normalised(keyword: str, value: str) -> str:
    """The value as ssh acts on it: lower-cased words; a known-hosts path with its `.`, `..`,
    repeated slashes and links resolved, so any spelling of /dev/null is /dev/null."""
    if keyword != "userknownhostsfile" or value.lower() == "none":
        return value.lower()
    return os.path.realpath(os.path.expanduser(re.sub("/+", "/", value)))
# `Keyword value`, `Keyword=value` or `Keyword = value`, as ssh splits a line.
_KEYWORD = re.compile(r"\s*([^\s=]+)\s*(?:=\s*|\s)(.*)")


def weakened_host_key_checking(text: str, path: str) -> list[str]:
    """One `file:line: ...` message per option above the managed block that weakens our hosts."""
    lines = text.split("\n")
    begin = next((i for i, line in enumerate(lines) if line.strip() == BEGIN), None)
    if begin is None:
        return []
    aliases = _block_hosts(lines[begin + 1:])
    if not aliases:
        return []
    found = []
    applies = True  # options before the first Host or Match line apply to every host
    for number, line in enumerate(lines[:begin], start=1):
        words = _words(line)
        if not words:
            continue
        keyword, args = words[0].lower(), words[1:]
        if keyword == "host":
            applies = _matches_any(args, aliases)
        elif keyword == "match":
            applies = True
        elif applies and args and _normalised(keyword, args[0]) in WEAKENING.get(keyword, ()):
            found.append(
                f"{path}:{number}: {words[0]} {args[0]} above the managed block applies to its hosts"
                " (ssh uses the first value), so their host keys are not checked"
            )
    return found


def _words(line: str) -> list[str]:
    """The keyword and arguments of one config line; [] for blanks and comments."""
    match = _KEYWORD.fullmatch(line.rstrip("\r"))
    if match is None or match.group(1).startswith("#"):
        return []
    try:
        args = shlex.split(match.group(2), comments=True)
    except ValueError:  # an unbalanced quote: ssh rejects the line, we read it loosely
        args = match.group(2).split()
    return [match.group(1), *args]


def _block_hosts(block_lines: list[str]) -> list[str]:
    hosts = []
    for line in block_lines:
        if line.strip() == END:
            break
        words = _words(line)
        if words and words[0].lower() == "host":
            hosts += [name for name in words[1:] if not set("*?!") & set(name)]
    return hosts


def _matches_any(patterns: list[str], aliases: list[str]) -> bool:
    return any(_host_matches(patterns, alias) for alias in aliases)


def _host_matches(patterns: list[str], alias: str) -> bool:
    """ssh's Host rule: some pattern matches and no negated (`!`) pattern does."""
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _glob(pattern.lstrip("!"), alias):
            if negated:
                return False
            matched = True
    return matched


def _glob(pattern: str, name: str) -> bool:
    """ssh's patterns: `*` and `?` only, case-insensitive like ssh's host matching."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.IGNORECASE | re.DOTALL) is not None
