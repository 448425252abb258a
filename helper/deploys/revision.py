"""Each site's deployed revision, recorded by full deploys and read by scale-up builds.

A scale-up build must install exactly what the site's other instances run. The deploy
job runs one build per site at a time, and a scale-up build reads the record when it
starts (not when it is queued), so an instance launched during a full deploy gets the
revision that deploy recorded. One small file per site, written atomically.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from helper.errors import ConfigError, HelperError
from helper.files.safepath import read_text
from helper.files.write import write_atomic

# Git SHAs, tags and branch names; nothing a shell would treat specially. At most 200
# characters: a 40-character SHA or a long release branch fits with room to spare.
REVISION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}")  # fullmatch: `$` would allow a final newline
# `..` is a parent directory to Capistrano's paths and a range to git (git refuses it in ref names).
_PARENT = ".."
# A record is one revision and a newline (201 bytes at most); the slack allows hand-edited
# whitespace, and the limit stops a stray large file from being read whole.
MAX_RECORD_BYTES = 1024
HISTORY_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
HISTORY_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _path(revision_dir: str, site: str) -> str:
    return os.path.join(os.path.expanduser(revision_dir), f"{site}.revision")


def validate(revision: str) -> str:
    if not REVISION_RE.fullmatch(revision) or _PARENT in revision:
        raise ConfigError(f"revision {revision!r} must match {REVISION_RE.pattern} and hold no {_PARENT!r}")
    return revision


def read(revision_dir: str, site: str) -> str | None:
    path = _path(revision_dir, site)
    text = read_text(path, limit_bytes=MAX_RECORD_BYTES)  # OutputError: one line naming the file
    if text is None:
        return None
    try:
        return validate(text.strip())
    except ConfigError as exc:  # the file is wrong, not the command line
        raise HelperError(f"{path}: {exc}") from None


def record(revision_dir: str, site: str, revision: str) -> bool:
    return write_atomic(_path(revision_dir, site), validate(revision) + "\n", mode=0o644)


def resolve(asked: str | None, scale_up: bool, recorded: Callable[[], str]) -> str:
    """The revision a build deploys: the one asked for (checked), else for a scale-up build the
    site's record (`recorded()`, read when the build starts), else there is none to choose.

    The deploy job's one rule (`revision resolve` in the Jenkinsfile): a full deploy or a canary
    passes the revision it wants, the checked-out branch head when nobody named one.
    """
    if asked:
        return validate(asked)
    if scale_up:
        return recorded()
    raise ConfigError("no revision to deploy: pass --revision (a full deploy passes its branch head,"
                      " `git rev-parse HEAD`) or --scale-up to deploy the site's recorded revision")


# --- history: what the site ran before, for `revision history` and rollbacks ------------------

# The last revisions a site recorded, newest last: enough to go back a few releases, small enough
# to read whole. One line each: "<UTC time> <revision>", and " rollback-from=<revision>" when a
# rollback recorded it (the revision it left is not one to roll back to again).
HISTORY_MAX = 20
MAX_HISTORY_BYTES = HISTORY_MAX * (2 * MAX_RECORD_BYTES + 64)
ROLLBACK_FROM = "rollback-from="


@dataclass(frozen=True)
class Entry:
    recorded_at: str
    revision: str
    rollback_from: str | None = None

    def line(self) -> str:
        tail = f" {ROLLBACK_FROM}{self.rollback_from}" if self.rollback_from else ""
        return f"{self.recorded_at} {self.revision}{tail}"


def _history_path(revision_dir: str, site: str) -> str:
    return os.path.join(os.path.expanduser(revision_dir), f"{site}.history")


def _is_revision(text: str) -> bool:
    return bool(REVISION_RE.fullmatch(text)) and _PARENT not in text


def history(revision_dir: str, site: str) -> list[Entry]:
    """The site's recorded revisions, oldest first; [] before the first record. A line that is
    not one is an error naming the file and line: a rollback must never guess."""
    path = _history_path(revision_dir, site)
    text = read_text(path, limit_bytes=MAX_HISTORY_BYTES)
    found = []
    for number, line in enumerate((text or "").splitlines(), 1):
        words = line.split(" ")
        came_from = words[2].removeprefix(ROLLBACK_FROM) if len(words) == 3 and words[2].startswith(ROLLBACK_FROM) \
            else None
        if not (len(words) == 2 or came_from) or not HISTORY_TIME_RE.fullmatch(words[0]) \
                or not _is_revision(words[1]) or (came_from is not None and not _is_revision(came_from)):
            raise HelperError(f"{path}:{number}: not '<time> <revision> [{ROLLBACK_FROM}<revision>]': {line[:80]!r}")
        found.append(Entry(words[0], words[1], came_from))
    return found


def record_with_history(revision_dir: str, site: str, revision: str, now: datetime,
                        rollback_from: str | None = None) -> bool:
    """Record the site's revision and add it to its history (the last HISTORY_MAX kept). The
    record is written last: a reader that sees it finds the history already holding it."""
    validate(revision)
    if rollback_from is not None:
        validate(rollback_from)
    entries = history(revision_dir, site) + [Entry(now.strftime(HISTORY_TIME_FORMAT), revision, rollback_from)]
    write_atomic(_history_path(revision_dir, site), "".join(e.line() + "\n" for e in entries[-HISTORY_MAX:]),
                 mode=0o644)
    return record(revision_dir, site, revision)


def rollback_target(entries: list[Entry], current: str | None, to: str | None) -> str:
    """The revision a rollback deploys: `to` if the site ran it (a typo must not deploy something
    nobody ever ran), else the newest one that is not the current one and that no rollback left."""
    if to is not None:
        validate(to)
        if to not in {e.revision for e in entries}:
            raise ConfigError(f"revision {to!r} is not in the site's history (revision history): "
                              f"a rollback goes only to a revision the site ran")
        return to
    left = {e.rollback_from for e in entries if e.rollback_from}
    for entry in reversed(entries):
        if entry.revision != current and entry.revision not in left:
            return entry.revision
    raise HelperError("no earlier good revision in the site's history to roll back to (revision history)")
