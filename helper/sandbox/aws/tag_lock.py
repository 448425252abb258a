"""One lock for moto's EC2 tag store, so a read never meets a write half done.

The sandbox's moto server is threaded, and so is real AWS traffic: a fleet watcher describes
instances while a deploy or a launch tags others. moto 5.2.5's TagBackend keeps a dict per
resource and `describe_tags` (which every DescribeInstances reaches through each instance's
tag_set) iterates that dict while `create_tags` may add to it on another thread. CPython then
raises "dictionary changed size during iteration" and the server answers 500 with an HTML page,
which AWS never does: CI met it in a real-SSH rollout (botocore could not parse the page).

Reads and writes of the store take one re-entrant lock. Each holds it for microseconds, so a
serialised tag store costs nothing measurable; nothing under it waits on anything else.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

_LOCK = threading.RLock()
_GUARDED = ("create_tags", "delete_tags", "delete_tag_keys", "describe_tags")
_installed = False


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return locked


def install() -> None:
    """Patch moto's TagBackend once (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.ec2.models.tags import TagBackend

    for name in _GUARDED:
        setattr(TagBackend, name, _guarded(getattr(TagBackend, name)))
    _installed = True
