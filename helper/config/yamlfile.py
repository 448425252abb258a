"""Read YAML safely and remember where each key came from, so errors can name the line.

A configuration file is small, hand-written text; anything else is refused with one line
before it can cost memory or time: devices, FIFOs, big files, anchors and aliases (the
"billion laughs" bomb), deep nesting, control characters and lone surrogates. Each node
is visited once, duplicate keys are refused, and mapping keys are the text as written.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helper.errors import ConfigError
from helper.files.read import TooLarge, Unreadable, read_regular

# A config of a thousand sites is about 150 KiB. The densest YAML of 256 KiB still loads
# in about 3 s and 100 MB with PyYAML's pure-Python loader; 1 MiB took 12 s and 360 MB.
MAX_CONFIG_BYTES = 256 * 1024
# The deepest path a config uses is 5 levels (sites.web.tags.Role.[0]); 32 leaves room
# for any reasonable layout and keeps PyYAML's recursive composer far from Python's
# recursion limit (20,000 levels ended in RecursionError).
MAX_DEPTH = 32
# Text YAML cannot carry usefully in a config value: C0 controls (tab and newline too:
# every value is one line), DEL, C1 controls, and lone surrogates, which no file
# encoding can write back out.
_BAD_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Plain scalars that YAML reads as something other than text. Where a field wants text,
# the text the user wrote is kept (`true` stays "true", `0123` stays "0123").
_NON_TEXT_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "timestamp")
)
_MERGE_TAG = "tag:yaml.org,2002:merge"
# How long a scalar may be when quoted in a message: enough to recognise it.
_SHOWN_CHARS = 40

@dataclass(frozen=True)
class Located:
    """A parsed YAML document plus the line of every mapping key, by key path."""

    path: str
    data: Any
    lines: dict[tuple, int]
    # key path -> the text of a plain scalar YAML read as a bool, number or date.
    written: dict[tuple, str] = field(default_factory=dict)

    def where(self, *keys: Any) -> str:
        """`file:line` for the deepest known prefix of `keys` (the file alone if none)."""
        for end in range(len(keys), 0, -1):
            line = self.lines.get(tuple(keys[:end]))
            if line is not None:
                return f"{self.path}:{line}"
        return self.path


class _Refused(Exception):
    """Raised inside the loader; load_text turns it into a ConfigError naming the file."""

    def __init__(self, mark: yaml.Mark, message: str) -> None:
        super().__init__(message)
        self.line = mark.line + 1
        self.message = message


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...")


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and deep nesting while composing."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(event.start_mark, "anchors (&name) and aliases (*name) are not supported; "
                                             "put settings shared by sites under defaults:")
        if self._depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        # Keys are the text as written (checked in _walk): site `2024` is "2024", not 2024.
        return {key.value: self.construct_object(value, deep=deep) for key, value in node.value}

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError):  # `2024-13-45`, an int of 5,000 digits
            kind = node.tag.rsplit(":", 1)[-1]
            raise _Refused(node.start_mark, f"cannot read {_shown(node.value)} as {kind}; "
                                            "quote it if it is text") from None


def _scalar(node: yaml.ScalarNode, path: tuple, written: dict[tuple, str]) -> None:
    bad = _BAD_CHARACTER.search(node.value)
    if bad:
        code = ord(bad.group())
        what = "lone surrogate" if 0xD800 <= code <= 0xDFFF else "control character"
        raise _Refused(node.start_mark, f"{what} U+{code:04X} in {_shown(node.value)}; "
                                        "config values are one line of text")
    if node.style is None and node.tag in _NON_TEXT_TAGS:
        written[path] = node.value


def _mapping(node: yaml.MappingNode, path: tuple, lines: dict[tuple, int], written: dict[tuple, str]) -> None:
    first_line: dict[str, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Refused(key_node.start_mark, "a key must be plain text, not a list or mapping")
        if key_node.tag == _MERGE_TAG:
            raise _Refused(key_node.start_mark, "merge keys (<<) are not supported; "
                                                "put settings shared by sites under defaults:")
        _scalar(key_node, path, {})
        key, line = key_node.value, key_node.start_mark.line + 1
        if key in first_line:
            inside = f" in {'.'.join(str(k) for k in path)}" if path else ""
            raise _Refused(key_node.start_mark, f"duplicate key {key!r}{inside} (first on line {first_line[key]})")
        first_line[key] = line
        lines[path + (key,)] = line
        _walk(value_node, path + (key,), lines, written)


def _walk(node: yaml.Node, path: tuple, lines: dict[tuple, int], written: dict[tuple, str]) -> None:
    """Check every node and record where each key is. Without aliases each node is
    reached once, and the depth is bounded by MAX_DEPTH, so recursion is safe."""
    if isinstance(node, yaml.MappingNode):
        _mapping(node, path, lines, written)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), lines, written)
    else:
        _scalar(node, path, written)


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def load_text(text: str, path: str) -> Located:
    """Parse `text` with PyYAML's safe loader; every refusal names file and line."""
    lines: dict[tuple, int] = {}
    written: dict[tuple, str] = {}
    loader = None
    try:
        loader = _ConfigLoader(text)  # checks every character before parsing
        node = loader.get_single_node()
        if node is not None:
            _walk(node, (), lines, written)
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise ConfigError(f"{path}:{exc.line}: {exc.message}") from None
    except yaml.reader.ReaderError as exc:  # a raw NUL, ESC or other unprintable character
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(f"{path}:{_line_of(text, exc.position)}: control character U+{code:04X}; "
                          "a config file is printable text") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return Located(path=path, data=data, lines=lines, written=written)


def load_file(path: str | Path) -> Located:
    try:
        data = read_regular(path, MAX_CONFIG_BYTES)
    except TooLarge:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB; is it the right file?") from None
    except Unreadable as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if data is None:
        raise ConfigError(f"{path}: cannot read: {os.strerror(errno.ENOENT)}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})") from None
    return load_text(text, str(path))
