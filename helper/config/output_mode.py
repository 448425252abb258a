"""`path.output_mode`: the mode of the outputs that list hosts (Capistrano, Ansible, JSON).

They are 0600 by default: they name internal addresses, and an Ansible inventory carries
variables that run on the controller. A config may share them with a group ("0640"), but
never let a group or other user change them: whoever can edit a host list chooses where a
deploy connects.
"""

from __future__ import annotations

import re
from typing import Any

from helper.config import fields
from helper.config.yamlfile import Located

DEFAULT_OUTPUT_MODE = 0o600
# Three octal digits (an optional leading 0): permission bits only, no setuid/setgid/sticky.
_OCTAL_MODE_RE = re.compile(r"0?[0-7]{3}")  # fullmatch: `$` would allow a final newline
# Group and other write bits.
_SHARED_WRITE = 0o022
# The owner (the helper's user) reads the file back to compare and rewrites it.
_OWNER_READ_WRITE = 0o600


def parse_output_mode(doc: Located, value: Any, keys: tuple) -> int | None:
    if value is None:
        return None
    # An unquoted 0640 is already the integer 416 by the time YAML hands it over.
    if not isinstance(value, str) or not _OCTAL_MODE_RE.fullmatch(value):
        raise fields.fail(doc, keys, f'must be a quoted string of octal digits such as "0640", not {value!r}')
    mode = int(value, 8)
    if mode & _SHARED_WRITE:
        raise fields.fail(doc, keys, f"{value}: others could change the host lists (no write bit for group or other)")
    if mode & _OWNER_READ_WRITE != _OWNER_READ_WRITE:
        raise fields.fail(doc, keys, f"{value}: the owner must be able to read and write the files (6 first)")
    return mode
