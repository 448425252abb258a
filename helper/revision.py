"""Each site's deployed revision, recorded by full deploys and read by scale-up builds.

A scale-up build must install exactly what the site's other instances run. The deploy
job runs one build per site at a time, and a scale-up build reads the record when it
starts (not when it is queued), so an instance launched during a full deploy gets the
revision that deploy recorded. One small file per site, written atomically.
"""

from __future__ import annotations

import os
import re

from helper.errors import ConfigError, HelperError
from helper.write import write_atomic

# Git SHAs, tags and branch names; nothing a shell would treat specially.
REVISION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}")  # fullmatch: `$` would allow a final newline


def _path(revision_dir: str, site: str) -> str:
    return os.path.join(os.path.expanduser(revision_dir), f"{site}.revision")


def validate(revision: str) -> str:
    if not REVISION_RE.fullmatch(revision):
        raise ConfigError(f"revision {revision!r} must match {REVISION_RE.pattern}")
    return revision


def read(revision_dir: str, site: str) -> str | None:
    try:
        with open(_path(revision_dir, site), encoding="utf-8") as handle:
            return validate(handle.read().strip())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HelperError(f"{_path(revision_dir, site)}: cannot read: {exc.strerror}") from None


def record(revision_dir: str, site: str, revision: str) -> bool:
    return write_atomic(_path(revision_dir, site), validate(revision) + "\n", mode=0o644)
