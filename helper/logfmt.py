"""Logging: one event per line on stderr, as key=value (default) or JSON.

Messages are written as `event=name key=value ...`; the JSON form splits those pairs
into fields so log pipelines can index them without a grok pattern.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time


def _pairs(message: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        tokens = shlex.split(message)
    except ValueError:
        return {"msg": message}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep:
            return {"msg": message}
        fields[key] = value
    return fields


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"ts={stamp}Z level={record.levelname.lower()} {record.getMessage()}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry = {"ts": f"{stamp}Z", "level": record.levelname.lower(), "logger": record.name}
        entry.update(_pairs(record.getMessage()))
        return json.dumps(entry, sort_keys=False)


def configure_logging(verbose: bool = False, json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # botocore logs request details (never credentials) at DEBUG; keep it quiet unless asked.
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
