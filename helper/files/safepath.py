"""Where an output path really leads, and reading it without surprises.

Every file the helper reads back or replaces (outputs, known_hosts, revision records) passes
through here first, because a path a user names may lead somewhere nobody meant:

- Symlinks. A link that someone else controls decides which file we replace: one planted
  in /tmp can point our ssh config at an `authorized_keys`. A link is followed only when
  nobody but us (or root) can have made or changed it: it is owned by the effective user or
  by root, and no group or other user can write the directory it sits in. A user's own link
  in a private directory (a dotfiles checkout) is still written through. Every link on the
  path is checked, directories included. Run as root, a link owned by a user is refused:
  that user could otherwise make root overwrite any file.
- Devices, FIFOs, sockets and directories. Replacing /dev/null with a regular file breaks
  the machine; reading /dev/zero or a FIFO never ends. Only regular files are read or
  replaced; reads (helper/files/read.py) never block on open and stop at a size limit.
"""

from __future__ import annotations

import os
import stat

from helper.errors import OutputError
from helper.files.read import Unreadable, not_regular, read_regular

# The largest file the helper reads back: ~50,000 hosts at ~600 bytes per known_hosts or
# ssh config entry is 30 MB. Anything larger is not ours, and reading it whole costs memory.
MAX_READ_BYTES = 32 * 1024 * 1024
# The kernel's own limit on links in one lookup (MAXSYMLINKS); more is a loop.
MAX_LINK_HOPS = 40
# Whoever has these bits on a directory can swap its entries.
_SHARED_WRITE = stat.S_IWGRP | stat.S_IWOTH
# Owners whose links we follow besides ourselves: only root can change what root owns.
_ROOT_UID = 0


def others_can_write(mode: int) -> bool:
    return bool(mode & _SHARED_WRITE)


def require_regular(path: str, mode: int) -> None:
    """Refuse anything but a regular file, naming what it is."""
    refused = not_regular(mode)
    if refused:
        raise OutputError(f"{path}: {refused}")


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def resolve(path: str | os.PathLike) -> str:
    """The real location `path` names, every symlink on the way followed only if trusted.

    Missing components are fine (they will be created); `..` is applied to the real
    directory reached so far, as the kernel does. Raises OutputError for an untrusted link
    and OSError (e.g. a component that is a file) for the caller to report.
    """
    named = os.path.join(os.getcwd(), os.path.expanduser(os.fspath(path)))
    pending = _parts(named)
    resolved = "/"
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, part)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            # Nothing exists from here on, so nothing can be a link: the rest is created as named.
            return os.path.normpath(os.path.join(candidate, *pending))
        if not stat.S_ISLNK(info.st_mode):
            resolved = candidate
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            raise OutputError(f"{path}: more than {MAX_LINK_HOPS} symlinks (a loop?)")
        _check_link(candidate, info, resolved)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = "/"
        pending = _parts(target) + pending
    return resolved


def _check_link(link: str, info: os.stat_result, directory: str) -> None:
    if info.st_uid not in (os.geteuid(), _ROOT_UID):
        raise OutputError(
            f"{link}: is a symlink owned by uid {info.st_uid}, not by this user; refusing to follow it"
            " (name the real file, or remove the link)"
        )
    if others_can_write(os.stat(directory).st_mode):
        raise OutputError(
            f"{link}: is a symlink in {directory}, which others can write; refusing to follow it"
            " (name the real file, or keep the link in a private directory)"
        )


def read_text(path: str | os.PathLike, limit_bytes: int = MAX_READ_BYTES) -> str | None:
    """The UTF-8 text of the regular file at `path`, or None when there is none.

    Every link on the way is checked (resolve()); then helper.files.read opens the real file
    without following a link swapped in since (O_NOFOLLOW), never a device or a FIFO, and
    reads at most `limit_bytes`. Line endings are kept as they are.
    """
    shown = os.fspath(path)
    try:
        data = read_regular(resolve(path), limit_bytes, follow_links=False)
    except Unreadable as exc:
        raise OutputError(f"{shown}: {exc}") from None
    except OSError as exc:  # resolve(): a component that is a file, a directory we may not enter
        raise OutputError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OutputError(f"{shown}: is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})") from None
