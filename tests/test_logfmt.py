"""Log lines as key=value and JSON: fields come from the template the code wrote, values from
its arguments, and no argument can forge a field, a line or the level."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from helper.logfmt import JsonFormatter, KeyValueFormatter

FORGERIES = [
    pytest.param("web\nts=2026-01-01T00:00:00Z level=error event=forged", id="newline"),
    pytest.param('x" level=error', id="quote and level"),
    pytest.param("event=x", id="event"),
    pytest.param("a b=c", id="space and equals"),
    pytest.param("\udce9", id="lone surrogate"),
    pytest.param("\x1b[31mred\u202e", id="escape and bidi override"),
    pytest.param("", id="empty"),
]


def record(template: str, *args, level: int = logging.INFO, name: str = "helper.consumer.loop") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, template, args, None)


def kv_fields(line: str) -> list[tuple[str, str]]:
    """A strict logfmt reader: unquoted values end at a space; quoted ones use JSON escapes."""
    fields, rest = [], line
    while rest:
        key, sep, rest = rest.partition("=")
        assert sep and key and " " not in key and '"' not in key, (key, line)
        if rest.startswith('"'):
            decoder = json.JSONDecoder()
            value, end = decoder.raw_decode(rest)
            rest = rest[end:]
        else:
            value, _, rest = rest.partition(" ")
            rest = " " + rest if rest else ""
        fields.append((key, value))
        assert rest == "" or rest.startswith(" "), (rest, line)
        rest = rest[1:]
    return fields


@pytest.mark.parametrize("hostile", FORGERIES)
def test_logfmt_values_from_arguments_cannot_forge_fields_or_lines(hostile):
    line = KeyValueFormatter().format(record("event=unknown_group group=%s message=%s", hostile, "m-1"))
    assert "\n" not in line and line.isprintable()
    line.encode("utf-8", "strict")  # no lone surrogate reaches the stream
    fields = kv_fields(line)
    assert [k for k, _ in fields] == ["ts", "level", "event", "group", "message"]
    assert dict(fields)["level"] == "info" and dict(fields)["event"] == "unknown_group"
    assert dict(fields)["group"] == hostile  # escaped, not lost


@pytest.mark.parametrize("hostile", FORGERIES)
def test_json_fields_come_from_the_template_and_cannot_override_level_logger_or_event(hostile):
    line = JsonFormatter().format(record("event=unknown_group group=%s message=%s", hostile, "m-1"))
    assert "\n" not in line
    entry = json.loads(line)
    assert list(entry) == ["ts", "level", "logger", "event", "group", "message"]
    assert (entry["level"], entry["logger"], entry["event"]) == ("info", "helper.consumer.loop", "unknown_group")
    assert entry["message"] == "m-1" and entry["group"] == hostile


@pytest.mark.parametrize("template, args, expected", [
    pytest.param("event=build_queued site=%s queue_id=%d", ("web", 7), 'event=build_queued site=web queue_id=7',
                 id="plain values stay bare"),
    pytest.param("event=delete_failed message=%s error=%r", ("m", "Connection refused"),
                 'event=delete_failed message=m error="Connection refused"', id="%r renders like %s, then quoted"),
    pytest.param("event=x url=%s/job/%s", ("http://j", "a b"), 'event=x url="http://j/job/a b"',
                 id="several placeholders in one value"),
    pytest.param("event=x ratio=%.1f%%", (12.345,), "event=x ratio=12.3%", id="precision and a literal percent"),
    pytest.param("event=inventory_done files=%d %s=%d", (2, "would_change", 1),
                 "event=inventory_done files=2 would_change=1", id="a key from the code's own argument"),
    pytest.param("sandbox lifecycle tick failed", (), 'msg="sandbox lifecycle tick failed"',
                 id="free text becomes one quoted msg"),
    pytest.param("Connection pool is full, discarding connection: %s", ("h level=error",),
                 'msg="Connection pool is full, discarding connection: h level=error"', id="library free text"),
])
def test_logfmt_line_shapes(template, args, expected):
    line = KeyValueFormatter().format(record(template, *args))
    assert line.split(" ", 2)[2] == expected


@pytest.mark.parametrize("template, args", [
    pytest.param("event=x %s=%s", ("level", "error"), id="key level from an argument"),
    pytest.param("event=x %s=%s", ("event", "forged"), id="key event from an argument"),
    pytest.param("event=x %s=1", ("a b",), id="a key with a space"),
    pytest.param("level=%s event=x", ("error",), id="a template that names a reserved key"),
])
def test_keys_from_arguments_never_replace_a_field(template, args):
    entry = json.loads(JsonFormatter().format(record(template, *args)))
    assert (entry["level"], entry["logger"], entry["event"]) == ("info", "helper.consumer.loop", "x")
    fields = kv_fields(KeyValueFormatter().format(record(template, *args)))
    keys = [k for k, _ in fields]
    assert keys[:2] == ["ts", "level"] and dict(fields)["level"] == "info"
    assert len(keys) == len(set(keys)) and keys.count("event") == 1


def test_a_template_that_does_not_match_its_arguments_still_logs_one_line():
    line = KeyValueFormatter().format(record("event=x count=%d", "not a number"))
    assert "\n" not in line and kv_fields(line)[2][0] == "msg"
    assert json.loads(JsonFormatter().format(record("event=x a=%s b=%s", "one")))["level"] == "info"


def test_an_exception_stays_on_the_same_line():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        rec = logging.LogRecord("helper", logging.ERROR, __file__, 1, "event=crashed", (), sys.exc_info())
    line = KeyValueFormatter().format(rec)
    assert "\n" not in line and "ValueError: bad\nthing" in dict(kv_fields(line))["exc"]
    assert "ValueError" in json.loads(JsonFormatter().format(rec))["exc"]


@pytest.mark.parametrize("value, expected", [
    ("web", "web"), ("", '""'), ("a b", '"a b"'), ("a=b", '"a=b"'), ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'), ("tab\there", '"tab\\there"'), ("\x7f", '"\\u007f"'),
    ("\udce9", '"\\udce9"'), ("caf\u00e9", "caf\u00e9"), ("nb\u00a0sp", '"nb\\u00a0sp"'),
])
def test_quote(value, expected):
    from helper.logfmt import quote

    assert quote(value) == expected


def test_cli_log_json_keeps_level_and_event_whatever_a_group_is_called(tmp_path):
    """End to end through the real stderr handler: a hostile value is one escaped field."""
    code = ("import logging, sys; from helper.logfmt import configure_logging; configure_logging(True, %s);"
            "logging.getLogger('helper.consumer.loop').warning('event=unknown_group group=%%s', sys.argv[1])")
    for json_lines in (False, True):
        done = subprocess.run([sys.executable, "-c", code % json_lines, '" level=debug event=ok\nx=\udce9'],
                              capture_output=True, text=True, timeout=60, errors="surrogateescape")
        assert done.returncode == 0 and done.stderr.count("\n") == 1, done.stderr
        if json_lines:
            entry = json.loads(done.stderr)
            assert (entry["level"], entry["event"]) == ("warning", "unknown_group")
        else:
            fields = dict(kv_fields(done.stderr.rstrip("\n")))
            assert (fields["level"], fields["event"]) == ("warning", "unknown_group")


@pytest.mark.parametrize("argv, expected", [
    (["consume", "-c", "x", "-v"], ["-v", "consume", "-c", "x"]),
    (["doctor", "--log-json", "-c", "x", "--verbose"], ["--log-json", "--verbose", "doctor", "-c", "x"]),
    (["-v", "inventory", "-c", "x"], ["-v", "inventory", "-c", "x"]),
    (["sandbox", "serve", "--", "-v"], ["sandbox", "serve", "--", "-v"]),
])
def test_logging_flags_are_taken_after_the_command_too(argv, expected):
    """Issue 24: `consume -c x -v` was a usage error."""
    from helper.cli import build_parser, hoist_global_flags

    assert hoist_global_flags(argv) == expected
    args = build_parser().parse_args(hoist_global_flags(["doctor", "-c", "deploy.yml", "-v", "--log-json"]))
    assert args.verbose and args.log_json and args.command == "doctor"
