"""Put rendered text on disk safely: atomically, only when it changed, and
inside a managed block when the file (~/.ssh/config) also belongs to the user.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import tempfile
from collections.abc import Callable

from helper.errors import OutputError

BEGIN = "# BEGIN aws-deploy-helper"
END = "# END aws-deploy-helper"

# Lines end at \n only, as ssh and the readers of our files see them; a \r before
# it stays part of the line, so CRLF files come back byte for byte.
_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")

# Markers whose lines are never ours to drop: CA keys and revocations.
_KNOWN_HOSTS_MARKER = "@"
# Host fields we never interpret: hashed names and patterns.
_HASHED_PREFIX = "|"
_PATTERN_CHARS = frozenset("*?!")


def _lines(text: str) -> list[str]:
    return _LINE.findall(text)


def write_atomic(path: str | os.PathLike, text: str, mode: int = 0o644) -> bool:
    """Make the file at `path` hold exactly `text` (UTF-8); return whether it was written.

    When it already holds `text` the file is not touched (mtime kept, so make-style
    consumers and config management see no change); only its mode is corrected.
    Otherwise the text goes to a temp file in the same directory, is fsynced and
    chmod-ed, then os.replace()d over the target and the directory fsynced, so
    readers see the old file or the new one, never a half-written one. A symlinked
    target (dotfiles repos) is written through: the link stays a link.
    """
    target = os.path.realpath(path)
    data = text.encode("utf-8")
    try:
        if _holds(target, data):
            if os.stat(target).st_mode & 0o7777 != mode:
                os.chmod(target, mode)
            return False
        directory = os.path.dirname(target)
        os.makedirs(directory, exist_ok=True)
        _replace(target, data, mode)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from error
    return True


def _holds(target: str, data: bytes) -> bool:
    try:
        with open(target, "rb") as existing:
            return existing.read() == data
    except FileNotFoundError:
        return False


def _replace(target: str, data: bytes, mode: int) -> None:
    directory, name = os.path.split(target)
    fd, temp_path = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
            os.fchmod(temp.fileno(), mode)
        os.replace(temp_path, target)
    finally:
        # Gone after a successful replace; removed here after any failure.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_path)
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Persist the rename itself; without it a crash can bring back the old file."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def merge_managed_block(
    existing: str | None, body: str, *, path: str | os.PathLike = "ssh config"
) -> str:
    """`existing` with the text from the BEGIN line to the END line replaced by `body`.

    Every byte outside the block is kept as it was (line endings, a missing final
    newline, text before and after the block). The END line keeps its own line ending.

    When there is no block yet, it is inserted at the TOP of the file. ssh_config
    uses the first value it finds for each option, so our Host sections must come
    before the user's sections and global options, or those would override them.

    The block always ends with a bare `Host *` line just before END. Options that
    began the user's file applied to every host; after our block they would
    otherwise fall under our last Host section and apply to that one host only.
    `Host *` makes them apply to all hosts again, exactly as before (the options we
    set for our hosts still win, since they come first).

    `path` only names the file in errors. A file with an unmatched or repeated
    marker raises OutputError naming the file and line.
    """
    body_lines = _lines(body)
    for line in body_lines:
        if line.strip() in (BEGIN, END):
            raise OutputError(f"cannot write {path}: the new block contains {line.strip()!r}")
    lines = _lines(existing or "")
    begin, end = _find_block(lines, path)
    if body and not body.endswith("\n"):
        body += "\n"
    block = f"{BEGIN}\n{body}Host *\n{END}"
    if begin is None:
        return block + "\n" + "".join(lines)
    end_line = lines[end]
    ending = end_line[len(end_line.rstrip("\r\n")):]
    return "".join(lines[:begin]) + block + ending + "".join(lines[end + 1:])


def _find_block(lines: list[str], path: str | os.PathLike) -> tuple[int | None, int | None]:
    """Indexes of the BEGIN and END lines, or (None, None) when there is no block."""
    begin = end = None
    for number, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker == BEGIN:
            if begin is not None:
                raise OutputError(f"{path}:{number}: second {BEGIN!r} (first on line {begin + 1})")
            begin = number - 1
        elif marker == END:
            if end is not None:
                raise OutputError(f"{path}:{number}: second {END!r} (first on line {end + 1})")
            if begin is None:
                raise OutputError(f"{path}:{number}: {END!r} without a {BEGIN!r} before it")
            end = number - 1
    if begin is not None and end is None:
        raise OutputError(f"{path}:{begin + 1}: {BEGIN!r} without an {END!r} after it")
    return begin, end


def unified_diff(path: str | os.PathLike, old: str | None, new: str) -> str:
    """What writing `new` over `old` would change, for --dry-run; "" when nothing."""
    diff = difflib.unified_diff(
        _diff_lines(old or ""),
        _diff_lines(new),
        fromfile="/dev/null" if old is None else f"{path}",
        tofile=f"{path}",
    )
    return "".join(diff)


def _diff_lines(text: str) -> list[str]:
    lines = _lines(text)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def prune_known_hosts(
    text: str, live_aliases: set[str], managed: Callable[[str], bool]
) -> str:
    """`text` without the lines whose hosts are all managed aliases no longer live.

    Only plain entries are candidates. Comments, @cert-authority/@revoked lines,
    hashed names (|1|...), patterns and any line naming a host that is live or not
    `managed` are kept byte for byte, as is every other line.
    """
    return "".join(
        line for line in _lines(text) if not _is_dead_entry(line, live_aliases, managed)
    )


def _is_dead_entry(line: str, live_aliases: set[str], managed: Callable[[str], bool]) -> bool:
    fields = line.split()
    if len(fields) < 2 or fields[0].startswith(("#", _KNOWN_HOSTS_MARKER)):
        return False
    for name in fields[0].split(","):
        if name.startswith(_HASHED_PREFIX) or _PATTERN_CHARS.intersection(name):
            return False
        host = _unbracket(name)
        if host in live_aliases or not managed(host):
            return False
    return True


def _unbracket(name: str) -> str:
    """`web-i-1` from `[web-i-1]:2222`, the form ssh writes for non-default ports."""
    if name.startswith("[") and "]:" in name:
        return name[1:name.index("]:")]
    return name
