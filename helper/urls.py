"""What a URL may be and what of it may be shown: one home for the rules every edge shares.

The config checks a webhook URL with it, the alerts and logs show a URL's origin, and nothing
we publish (a tag, an alert, a log line, doctor's output) carries a `user:token@`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from helper.errors import ConfigError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1"})
# `scheme://user:password@` of any URL in a text. Greedy up to the host: a user or password may
# hold an `@` itself (`https://a@b:pw@host/`), and only the last one before `/?#` ends it.
USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")


def check_webhook_url(url: str) -> str:
    """The URL if the policy above allows it; else ConfigError naming why (not echoing it)."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises ValueError for a bad port
    except ValueError:
        raise ConfigError("lifecycle.alerts.webhook_url is not a URL") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError("lifecycle.alerts.webhook_url must not hold user:password@")
    if not host:
        raise ConfigError("lifecycle.alerts.webhook_url has no host")
    if parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return url
    raise ConfigError("lifecycle.alerts.webhook_url must be https:// (or http:// to 127.0.0.1 or [::1])")


def safe_origin(url: str) -> str:
    """scheme://host[:port] of a URL: what a log line may show of it."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


def redact_userinfo(text: str) -> str:
    """Drop the userinfo (`user:token@`) of every URL in a text."""
    return USERINFO_RE.sub(r"\1", text)
