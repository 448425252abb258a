"""How AWS times a lifecycle action. Pure; no botocore.

The consumer reads a hook's heartbeat timeout to pace its heartbeats, `hooks install` sizes
the queue's retention from the global timeout, and `doctor` checks both: one rule for all.
"""

from __future__ import annotations

from typing import Mapping

# AWS's default HeartbeatTimeout when a hook does not say, and the range PutLifecycleHook accepts.
DEFAULT_HEARTBEAT_TIMEOUT_S = 3600
MIN_HEARTBEAT_TIMEOUT_S = 30
MAX_HEARTBEAT_TIMEOUT_S = 7200
# AWS: global timeout = min(100 x HeartbeatTimeout, 48 h).
GLOBAL_TIMEOUT_FACTOR, GLOBAL_TIMEOUT_MAX_S = 100, 172800


def heartbeat_timeout_s(hook: Mapping) -> int:
    """The HeartbeatTimeout of a DescribeLifecycleHooks entry, AWS's default when absent."""
    return int(hook.get("HeartbeatTimeout", DEFAULT_HEARTBEAT_TIMEOUT_S))


def global_timeout_s(heartbeat_timeout: int) -> int:
    return min(GLOBAL_TIMEOUT_FACTOR * heartbeat_timeout, GLOBAL_TIMEOUT_MAX_S)
