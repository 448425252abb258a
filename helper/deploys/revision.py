"""Each site's deployed revision, recorded by full deploys and read by scale-up builds.

A scale-up build must install exactly what the site's other instances run. The deploy
job runs one build per site at a time, and a scale-up build reads the record when it
starts (not when it is queued), so an instance launched during a full deploy gets the
revision that deploy recorded. One small file per site, written atomically.
"""

from __future__ import annotations

import os
import re
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
