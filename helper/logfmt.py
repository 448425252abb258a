"""Logging: one event per line on stderr, as key=value (default) or JSON.

The code logs with templates, `log.info("event=build_queued site=%s queue_id=%d", site, qid)`.
The template is ours; the arguments may come from outside (a group name in a message, an
error text from a server). So the formatters never parse the finished message: they walk the
template's `key=value` tokens and render each value from its own arguments, quoting it when it
holds a space, `=`, `"`, a backslash or anything not printable. A hostile argument stays inside
its one field: it cannot start a line, add a field, or replace `ts`, `level` or `logger`.

`%r` renders like `%s`: the callers use it to make an error text stand out, and quoting is
now the formatter's job (a Python repr would add a second layer of quotes to read through).
A template that is not key=value (a library's free text) becomes one quoted `msg` field.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

# Fields every line starts with, set from the record: a template or argument naming one gets
# an underscore prefix instead of replacing it.
RESERVED_KEYS = ("ts", "level", "logger")
# A printf conversion (with mapping key, flags, width, precision, length), or a literal %%.
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")
# Keys as logfmt readers and log pipelines index them; anything else in a key becomes `_`.
KEY_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")
# Short forms for the control characters people recognise; the rest are \uXXXX (JSON's escapes,
# so a quoted value reads back with any JSON string decoder).
SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class TemplateMismatch(ValueError):
    """The template is not key=value, or its placeholders do not fit its arguments."""


def _escape_char(char: str) -> str:
    if char in SHORT_ESCAPES:
        return SHORT_ESCAPES[char]
    if char.isprintable():  # False for lone surrogates, bidi controls and every space but " "
        return char
    code = ord(char)
    if code > 0xFFFF:  # JSON spells astral characters as a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def quote(value: str) -> str:
    """A logfmt value: bare when it is plain, else double-quoted with JSON escapes."""
    if value and all(c.isprintable() and c not in ' ="\\' for c in value):
        return value
    return '"' + "".join(_escape_char(c) for c in value) + '"'


def _render(template: str, args: list | None) -> str:
    """`template % args`, with %r as %s; consumes from `args` the arguments it uses.

    None: the record had no arguments, and logging leaves such a message as written (a `%`
    in it is text)."""
    if args is None:
        return template
    specs = [m.group() for m in PLACEHOLDER.finditer(template) if m.group() != "%%"]
    if any("(" in s or "*" in s for s in specs) or len(specs) > len(args):
        raise TemplateMismatch(template)
    used = [args.pop(0) for _ in specs]
    try:
        return PLACEHOLDER.sub(lambda m: "%s" if m.group().endswith("r") else m.group(), template) % tuple(used)
    except (TypeError, ValueError) as exc:
        raise TemplateMismatch(template) from exc


def _key(raw: str, taken: set[str]) -> str:
    key = KEY_CHARS.sub("_", raw) or "_"
    while key in taken or key in RESERVED_KEYS:
        key = "_" + key
    taken.add(key)
    return key


def template_fields(template: str, args: tuple) -> list[tuple[str, str]]:
    """[(key, value)] from a `key=value ...` template and its arguments; keys are unique."""
    remaining, fields, taken = (list(args) if args else None), [], set()
    for token in template.split(" "):
        raw_key, sep, raw_value = token.partition("=")
        if not sep or not raw_key:
            raise TemplateMismatch(template)
        key = _render(raw_key, remaining)
        fields.append((_key(key, taken), _render(raw_value, remaining)))
    if remaining:  # arguments left over: the template is not what the caller meant
        raise TemplateMismatch(template)
    return fields


def _free_text(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):  # arguments that do not fit: keep both, as logging itself would fail
        return f"{record.msg} {record.args!r}"


def record_fields(record: logging.LogRecord, formatter: logging.Formatter) -> list[tuple[str, str]]:
    """The record's own fields (not ts/level/logger), from its template, else one `msg`."""
    args = record.args if isinstance(record.args, tuple) else ()
    try:
        if not isinstance(record.msg, str) or (record.args and not isinstance(record.args, tuple)):
            raise TemplateMismatch(str(record.msg))
        fields = template_fields(record.msg, args)
    except TemplateMismatch:
        fields = [("msg", _free_text(record))]
    if record.exc_info:
        fields.append(("exc", formatter.formatException(record.exc_info)))
    return fields


def _stamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z"


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        head = f"ts={_stamp(record)} level={quote(record.levelname.lower())}"
        return " ".join([head] + [f"{k}={quote(v)}" for k, v in record_fields(record, self)])


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": _stamp(record), "level": record.levelname.lower(), "logger": record.name}
        entry.update(record_fields(record, self))  # keys are unique and never reserved
        # ensure_ascii: lone surrogates and control characters leave as \u escapes, one line.
        return json.dumps(entry, ensure_ascii=True)


def configure_logging(verbose: bool = False, json_lines: bool = False, daemon: bool = False) -> None:
    """WARNING for a one-shot command (a pipeline stage's stderr stays quiet), INFO for a daemon
    (the journal shows what the consumer does: builds, completions, breakers, holds; without it the
    journal was silent while it deployed, issue 24), DEBUG with -v (each step, heartbeats too)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO if daemon else logging.WARNING)
    # botocore logs request details (never credentials) at DEBUG; keep it quiet unless asked.
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
