"""The one way the helper reads a file it did not write: a regular file, bounded, never blocking.

The config file, Jenkins credentials, revision records, known_hosts and ssh configs all come
through here. A path may name a device (/dev/zero never ends), a FIFO (opening one waits for a
writer forever) or a file far larger than anything the helper writes; each is refused with
words that follow the path in a one-line message. Callers choose the error class, since a
bad config is a usage error (exit 2) and a bad output file is a failed run (exit 1).
"""

from __future__ import annotations

import os
import stat
from typing import Callable

# Reads go in pieces this big, so a small file never costs a buffer of the whole limit.
_READ_CHUNK_BYTES = 1024 * 1024

# stat's file type -> the words for it in "is a FIFO, not a regular file".
_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symlink",
}


class Unreadable(Exception):
    """Why a file was not read, as the words that follow its path ("is a FIFO, not a regular file")."""


class TooLarge(Unreadable):
    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(f"is {size_bytes} bytes, more than the {limit_bytes} bytes the helper reads")
        self.size_bytes, self.limit_bytes = size_bytes, limit_bytes


def not_regular(mode: int) -> str | None:
    """None for a regular file, else what it is instead ("is a FIFO, not a regular file")."""
    if stat.S_ISREG(mode):
        return None
    return f"is {_KINDS.get(stat.S_IFMT(mode), 'an unknown kind of file')}, not a regular file"


def _read_at_most(fd: int, limit_bytes: int) -> bytes:
    """Up to `limit_bytes`, in chunks: files in /proc say size 0 and still have text."""
    chunks: list[bytes] = []
    left = limit_bytes
    while left > 0:
        chunk = os.read(fd, min(_READ_CHUNK_BYTES, left))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_regular(path: str | os.PathLike, limit_bytes: int, *, follow_links: bool = True,
                 check: Callable[[os.stat_result], None] | None = None, dir_fd: int | None = None) -> bytes | None:
    """The bytes of the regular file at `path`, or None when there is none.

    Never opens a device or FIFO (stat first, and O_NONBLOCK in case one is swapped in before
    the open), never reads more than `limit_bytes`, and with follow_links=False never follows
    a link (O_NOFOLLOW: for a path whose links were already checked). `check` sees the opened
    file's stat (its mode, not that of whatever the path names a moment later) before reading.
    `dir_fd`: `path` is a name in that open directory (the writer's *at() calls). Raises Unreadable.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        refused = not_regular(os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_links).st_mode)
        if refused:
            raise Unreadable(refused)
        fd = os.open(path, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        refused = not_regular(info.st_mode)
        if refused:
            raise Unreadable(refused)
        if check is not None:
            check(info)
        if info.st_size > limit_bytes:
            raise TooLarge(info.st_size, limit_bytes)
        data = _read_at_most(fd, limit_bytes + 1)  # one more: a file that grew since fstat
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit_bytes:
        raise TooLarge(len(data), limit_bytes)
    return data
