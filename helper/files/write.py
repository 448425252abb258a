"""Put rendered text on disk safely: all files or none, atomically, only when it changed,
and inside a managed block when the file (~/.ssh/config) also belongs to the user.

Which paths may be read or replaced at all (regular files, trusted links) is
helper.files.safepath's job.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from helper import PROG
from helper.errors import OutputError
from helper.files.read import Unreadable, read_regular
from helper.files.safepath import others_can_write, require_regular, resolve

log = logging.getLogger(__name__)

BEGIN = f"# BEGIN {PROG}"
END = f"# END {PROG}"

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


@dataclass(frozen=True)
class NewFile:
    """What one file must hold: `path` as the user named it (for messages), its text and mode."""

    path: str
    text: str
    mode: int


@dataclass
class _Staged:
    new: NewFile
    target: str  # the real location, links followed (helper.files.safepath.resolve)
    # The target's directory, opened once (O_DIRECTORY|O_NOFOLLOW): every later step is a *at()
    # call on it, so a directory swapped for a link after the checks cannot redirect the write
    # (root overwrote a file that way in about 1,345 tries; issue 19 item 14).
    dir_fd: int
    existing: os.stat_result | None
    temp: str | None = None  # a name in dir_fd; None: the file already holds the text
    replaced: bool = False

    @property
    def name(self) -> str:
        return os.path.basename(self.target)


def write_all(files: Sequence[NewFile]) -> list[str]:
    """Make every file hold its text, or change none of them; return the paths that changed.

    First every target is checked (a regular file or nothing, reached through trusted links
    only) and every changed text is written to a temp file beside its target, fsynced,
    chmod-ed and given the existing file's owner and group (root editing a user's ssh config
    must not leave it root's). Only when all of that worked are the temp files renamed over
    their targets and the directories fsynced, so readers see each old file or each new one,
    never a half-written one. A failure before the renames removes every temp file and
    changes nothing. (A rename itself failing, after others succeeded, is the one case that
    leaves some files new: the error names them.)

    A file that already holds its text is not rewritten (mtime kept, so make-style consumers
    and config management see no change); only its mode is corrected.
    """
    staged: list[_Staged] = []
    try:
        for new in files:
            staged.append(_stage(new))
        _warn_about_shared_directories(staged)
        _commit(staged)
    finally:
        for item in staged:
            if item.temp is not None and not item.replaced:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(item.temp, dir_fd=item.dir_fd)
            os.close(item.dir_fd)
    return [item.new.path for item in staged if item.temp is not None]


def write_atomic(path: str | os.PathLike, text: str, mode: int = 0o644) -> bool:
    """write_all() for one file; return whether it was written."""
    return bool(write_all([NewFile(os.fspath(path), text, mode)]))


def _stage(new: NewFile) -> _Staged:
    dir_fd = None
    try:
        target = resolve(new.path)
        directory = os.path.dirname(target)
        os.makedirs(directory, exist_ok=True)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        staged = _Staged(new, target, dir_fd, None)
        dir_fd = None  # the staged item closes it now
        staged.existing = _lstat(staged)
        if staged.existing is not None:
            require_regular(new.path, staged.existing.st_mode)
        data = new.text.encode("utf-8")
        if staged.existing is None or not _holds(staged, data):
            staged.temp = _write_temp(staged, data, new.mode)
        return staged
    except OSError as error:
        raise OutputError(f"cannot write {new.path}: {error.strerror or error}") from None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def _lstat(item: _Staged) -> os.stat_result | None:
    try:
        return os.stat(item.name, dir_fd=item.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _holds(item: _Staged, data: bytes) -> bool:
    if item.existing.st_size != len(data):  # no need to read a file of another size, however big
        return False
    try:
        return read_regular(item.name, len(data), follow_links=False, dir_fd=item.dir_fd) == data
    except Unreadable:  # swapped or grown since: not the same, so write it (the write checks again)
        return False


# Tries at a free temp name: each is random, so a clash twice running is already unlikely.
TEMP_NAME_TRIES = 100


def _write_temp(item: _Staged, data: bytes, mode: int) -> str:
    """A fsynced temp file beside the target (in its open directory) with `data`, `mode` and the
    existing owner; its name. O_EXCL|O_NOFOLLOW: never a file or link someone put there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(TEMP_NAME_TRIES):
        temp_name = f".{item.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(temp_name, flags, 0o600, dir_fd=item.dir_fd)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no free temporary file name")
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            if item.existing is not None:
                _keep_owner(temp.fileno(), item.existing)
            os.fchmod(temp.fileno(), mode)  # after chown, which may clear mode bits
            os.fsync(temp.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name, dir_fd=item.dir_fd)
        raise
    return temp_name


def _keep_owner(fd: int, existing: os.stat_result) -> None:
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) != (existing.st_uid, existing.st_gid):
        os.fchown(fd, existing.st_uid, existing.st_gid)


def _warn_about_shared_directories(staged: list[_Staged]) -> None:
    """Once per directory: others can swap what we write there after we wrote it."""
    directories = {os.path.dirname(item.target): item.dir_fd for item in staged}
    for directory, dir_fd in directories.items():
        info = os.fstat(dir_fd)
        if others_can_write(info.st_mode):
            log.warning("event=shared_output_directory dir=%s problem=%s", directory,
                        "others can write this directory, so they can replace or remove the files written there")
        if info.st_uid not in (os.geteuid(), 0):
            log.warning("event=foreign_output_directory dir=%s owner_uid=%d problem=%s", directory, info.st_uid,
                        "another user owns this directory, so they can replace or remove the files written there")


def _commit(staged: list[_Staged]) -> None:
    done: list[str] = []
    for item in staged:
        try:
            if item.temp is not None:
                os.replace(item.temp, item.name, src_dir_fd=item.dir_fd, dst_dir_fd=item.dir_fd)
                item.replaced = True
                done.append(item.new.path)
            elif item.existing.st_mode & 0o7777 != item.new.mode:
                _chmod_regular(item, item.new.mode)
        except OSError as error:
            already = f" (already replaced: {', '.join(done)})" if done else ""
            raise OutputError(f"cannot write {item.new.path}: {error.strerror or error}{already}") from None
    # Persist the renames themselves; without it a crash can bring back the old file.
    for dir_fd in {os.path.dirname(item.target): item.dir_fd for item in staged if item.replaced}.values():
        os.fsync(dir_fd)


def _chmod_regular(item: _Staged, mode: int) -> None:
    # Through an O_NOFOLLOW descriptor: a link swapped in since the check is not followed.
    fd = os.open(item.name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=item.dir_fd)
    try:
        os.fchmod(fd, mode)
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
    import difflib  # only --dry-run diffs: a real run need not import it

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
