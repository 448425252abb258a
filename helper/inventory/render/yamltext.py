"""Write block YAML as text, straight from dicts, lists and scalars.

PyYAML's dump builds a node for every value before its emitter runs, and at 10,000 hosts the
Ansible inventory is a quarter of a million nodes: the largest share of our CPU after botocore's
parse, and of our memory (docs/benchmarks.md). Our documents are only mappings with sorted keys,
lists of scalars and a few tagged values, so they are written here line by line instead.

Every scalar is written so that a YAML 1.1 reader (PyYAML and Ansible, Ruby's Psych) reads back
the same text: plain only when it can be nothing else, single-quoted when it is printable on
one line, double-quoted with escapes otherwise. tests/inventory/test_yamltext.py holds it to PyYAML's
reading, and the readers' tests to Ansible's and Ruby's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

INDENT = "  "

# Plain scalars we allow: a letter, `_` or `/` first (so no number, date, indicator or `.inf`),
# then characters no YAML reader treats specially inside a plain scalar.
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
# YAML 1.1 words that read as a boolean or null, whatever their case.
_TYPED_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
# What YAML calls printable, less its line breaks (NEL, LS, PS) and the byte order mark.
_UNPRINTABLE = re.compile("[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def scalar(value: object, quoted: bool = False) -> str:
    """One scalar as YAML text; `quoted` never writes it plain (for tagged values)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if not quoted and _PLAIN.fullmatch(text) and text.lower() not in _TYPED_WORDS:
        return text
    if not _UNPRINTABLE.search(text):
        return "'" + text.replace("'", "''") + "'"
    return '"' + re.sub(r'[\\"]|' + _UNPRINTABLE.pattern, lambda m: _escape(m.group()), text) + '"'


def dump(document: Mapping, tags: Mapping[type, str] | None = None) -> str:
    """`document` as block YAML, keys sorted; a value whose type is in `tags` gets that tag.

    Lists are written PyYAML's way, their `- ` at the key's indent; empty ones as `[]`/`{}`.
    """
    lines: list[str] = []
    _mapping(document, "", lines, tags or {})
    return "".join(lines)


def _mapping(mapping: Mapping, indent: str, lines: list[str], tags: Mapping[type, str]) -> None:
    for key in sorted(mapping):
        value = mapping[key]
        head = f"{indent}{scalar(key)}:"
        tag = tags.get(type(value))
        if tag:
            head += f" {tag}"
        if isinstance(value, Mapping):
            if not value:
                lines.append(f"{head} {{}}\n")
            else:
                lines.append(head + "\n")
                _mapping(value, indent + INDENT, lines, tags)
        elif isinstance(value, list):
            if not value:
                lines.append(f"{head} []\n")
            else:
                lines.append(head + "\n")
                lines.extend(f"{indent}- {scalar(item)}\n" for item in value)
        else:
            lines.append(f"{head} {scalar(value, quoted=bool(tag))}\n")
