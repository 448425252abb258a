"""The lock file a test-host network holds for its address range, made where no one else can plant one.

A lock in $TMPDIR opened with plain open(..., "a") followed a symlink someone planted there (and,
as root, created or appended to whatever it named; issue 19 item 21). The lock lives in a
directory of our own under $TMPDIR instead, made 0700 and checked to be ours, and is opened with
O_NOFOLLOW, so a link in its place is an error, never followed.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


class LockDirError(OSError):
    """The lock directory is not a private directory of ours."""


def private_lock_dir() -> Path:
    """$TMPDIR/adh-locks-<uid>: a real directory, ours, that no one else may write."""
    path = Path(tempfile.gettempdir()) / f"adh-locks-{os.geteuid()}"
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise LockDirError(f"{path} is not a private directory of ours (a link, another user's, or open to "
                           "others); remove it")
    return path


def open_lock(name: str) -> int:
    """A descriptor of the lock file `name` in the private directory; a link there is refused."""
    return os.open(private_lock_dir() / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
