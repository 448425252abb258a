"""The sandbox's own files (state.json, hosts.json) and the process they name, read as untrusted.

A state file may be garbage, a FIFO or a link someone planted, and the pid it records may be
an unrelated process by now (pids are reused). `sandbox down` once killed whatever that pid was
and removed whatever directory the file named (issue 19 items 10 and 23). So a record is read
as a small regular file only, must be a JSON object with the fields we wrote, and a recorded
process counts as this sandbox's only while it is the same process (its start time, read from
/proc, as recorded) running `sandbox serve` for this state directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from helper.errors import ConfigError
from helper.files.read import Unreadable, read_regular

# Our records are a few hundred bytes; anything much larger is not ours.
RECORD_MAX_BYTES = 64 * 1024
# /proc/<pid>/stat: the start time (in clock ticks after boot) is field 22, counted after the
# command name in parentheses, which may itself hold spaces and parentheses.
_STARTTIME_FIELD_AFTER_COMM = 19


def read_record(path: Path, required: dict[str, type]) -> dict | None:
    """The JSON object in `path`, or None when there is none; ConfigError (one line naming the file)
    for anything else: not a regular file, too large, not JSON, or a field missing or of another type."""
    fix = "remove it, or use another --state-dir"
    try:
        data = read_regular(path, RECORD_MAX_BYTES, follow_links=False)
    except Unreadable as exc:
        raise ConfigError(f"{path}: {exc}; {fix}") from None
    if data is None:
        return None
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ConfigError(f"{path}: not a sandbox record (not JSON); {fix}") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{path}: not a sandbox record (not a JSON object); {fix}")
    for name, kind in required.items():
        if not isinstance(record.get(name), kind) or isinstance(record.get(name), bool):
            raise ConfigError(f"{path}: not a sandbox record ({name} missing or not a {kind.__name__}); {fix}")
    return record


def process_start(pid: int) -> str | None:
    """When the process started (clock ticks after boot), or None when there is no such process."""
    try:
        data = read_regular(f"/proc/{pid}/stat", 4096)
    except Unreadable:
        return None
    if not data:
        return None
    fields = data.decode("utf-8", "replace").rpartition(")")[2].split()
    return fields[_STARTTIME_FIELD_AFTER_COMM] if len(fields) > _STARTTIME_FIELD_AFTER_COMM else None


def process_argv(pid: int, started: str | None) -> list[str] | None:
    """The arguments of `pid` while it is still the process that started at `started` (any start
    when None); None when it is gone, its pid was reused by another process since, or unreadable."""
    if pid <= 1:
        return None
    now_started = process_start(pid)
    if now_started is None or (started is not None and now_started != started):
        return None
    try:
        argv = (read_regular(f"/proc/{pid}/cmdline", RECORD_MAX_BYTES) or b"").split(b"\0")
    except Unreadable:
        return None
    return [w.decode("utf-8", "surrogateescape") for w in argv]


def is_our_serve(pid: int, started: str | None, directory: Path) -> bool:
    """Is `pid` still the `sandbox serve` process of `directory` that recorded itself?"""
    words = process_argv(pid, started)
    if words is None:
        return False
    try:
        named = os.path.realpath(words[words.index("--state-dir") + 1])
    except (ValueError, IndexError):
        return False
    return "sandbox" in words and "serve" in words and named == str(directory.resolve())
