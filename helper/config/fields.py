"""Validate one field of a loaded YAML document; every error names file:line and the key.

Shared by the config's sections (helper/config/document.py, helper/config/lifecycle.py), so each
reports a wrong value the same way: `deploy.yml:12: lifecycle.batch_window_s: must be ...`.
"""

from __future__ import annotations

import re
from typing import Any

from helper.config.yamlfile import Located
from helper.errors import ConfigError

# Site and role names end up in host aliases, Jenkins parameters and file names, so
# they are restricted to characters that need no quoting anywhere.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # fullmatch: `$` would allow a final newline
# A login name as useradd's default NAME_REGEX takes it, plus upper case (Windows'
# Administrator) and dots (first.last), at most 32 characters like Linux's utmp. It reaches
# ssh's -l/User, Capistrano and Ansible's ansible_user, so it must not start with `-`
# (an option) and holds nothing a shell, ssh (% tokens) or a template ({{) reads.
# Samba's trailing `$` is left out: machine accounts never log in over ssh.
LOGIN_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


def fail(doc: Located, keys: tuple, message: str) -> ConfigError:
    dotted = ".".join(str(k) for k in keys)
    return ConfigError(f"{doc.where(*keys)}: {dotted}: {message}")


def mapping(doc: Located, value: Any, keys: tuple, allowed: set[str] | None = None) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(doc, keys, f"must be a mapping, not {type(value).__name__}")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                raise fail(doc, keys + (key,), f"unknown key (known: {', '.join(sorted(allowed))})")
    return value


def as_written(doc: Located, value: Any, keys: tuple) -> Any:
    """`value`, or for a bare `true`, `0123` or `2024-01-01` the text the user wrote.

    A field that wants text keeps what the user wrote rather than YAML's reading of it
    (str(True) would be "True"). Anything else (a list, a mapping) is returned as is.
    """
    if isinstance(value, str) or value is None:
        return value
    return doc.written.get(tuple(keys), value)


def string(doc: Located, value: Any, keys: tuple) -> str | None:
    value = as_written(doc, value, keys)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise fail(doc, keys, "must be a non-empty string")
    return value


def name(doc: Located, value: Any, keys: tuple, what: str) -> str:
    value = as_written(doc, value, keys)
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise fail(doc, keys, f"{what} {value!r} must match {NAME_RE.pattern}")
    return value


def login_name(doc: Located, value: Any, keys: tuple) -> str | None:
    value = string(doc, value, keys)
    if value is not None and not LOGIN_NAME_RE.fullmatch(value):
        raise fail(doc, keys, f"{value!r} is not a login name ({LOGIN_NAME_RE.pattern}, at most 32 characters)")
    return value


def port(doc: Located, value: Any, keys: tuple) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise fail(doc, keys, f"port must be an integer from 1 to 65535, not {value!r}")
    return value


def choice(doc: Located, value: Any, keys: tuple, choices: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if value not in choices:
        raise fail(doc, keys, f"must be one of {', '.join(choices)}, not {value!r}")
    return value


def number(doc: Located, value, keys: tuple, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise fail(doc, keys, f"must be a number from {low} to {high}, not {value!r}")
    return float(value)


def whole(doc: Located, value, keys: tuple, low: int, high: int) -> int:
    """A whole number: 2.5 is refused, not cut to 2 behind the user's back (issue 24)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise fail(doc, keys, f"must be a whole number from {low} to {high}, not {value!r}")
    return value
