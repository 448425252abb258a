"""Three of moto 5.2.5's hot paths, made cheap without changing a single answer.

A burst of 1,000 launches (bench/lifecycle.py --burst) saturated the sandbox's moto process, so
every figure measured moto rather than the consumer. Its own per-request CPU profile
(docs/benchmarks.md) put most of the time in three places, each of them work AWS does not do:

- SQS asks the clock through datetimes: `unix_time()` builds two naive UTC datetimes and
  subtracts them, and every message's `visible`/`delayed` check calls it. Receiving, sending
  (`Queue.attributes` counts visible, invisible and delayed messages on each send) and the
  retention check did millions of these. With no datetime given the answer is time.time().
- Each received message's retention check builds every queue attribute, those counts among
  them, to read one: MessageRetentionPeriod. It is read from the queue directly.
- Launching an instance looks its image up with an `image-id` filter, which fnmatches every AMI
  moto knows (~1,300 built in). For an id without wildcards that is an exact lookup.

The server's host-to-backend memo (server.py) is the fourth. Tests in tests/test_sandbox_speedups.py
hold each patched path to moto's own answer.
"""

from __future__ import annotations

import time
from typing import Any

_installed = False
# fnmatch's wildcards: an image-id filter value without any of them matches one id exactly.
_WILDCARDS = frozenset("*?[")


def _fast_unix_time(original):
    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else original(dt)

    return unix_time


def _fast_unix_time_millis(original):
    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else original(dt)

    return unix_time_millis


def _retention_check(self: Any, queue_name: str, message: Any) -> bool:
    """moto's SQSBackend.is_message_valid_based_on_retention_period, reading one attribute."""
    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return retain_until > time.time()


def _exact_image_lookup(original):
    def describe_images(self: Any, ami_ids: Any = None, filters: Any = None, exec_users: Any = None,
                        owners: Any = None) -> list:
        wanted = (filters or {}).get("image-id") if not (ami_ids or exec_users or owners) else None
        if filters and len(filters) == 1 and isinstance(wanted, str) and not _WILDCARDS & set(wanted):
            ami = self.amis.get(wanted)
            return [ami] if ami is not None else []
        return original(self, ami_ids=ami_ids, filters=filters, exec_users=exec_users, owners=owners)

    return describe_images


def install() -> None:
    """Patch moto once (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.ec2.models import amis
    from moto.sqs import models as sqs

    sqs.unix_time = _fast_unix_time(sqs.unix_time)
    sqs.unix_time_millis = _fast_unix_time_millis(sqs.unix_time_millis)
    sqs.SQSBackend.is_message_valid_based_on_retention_period = _retention_check
    amis.AmiBackend.describe_images = _exact_image_lookup(amis.AmiBackend.describe_images)
    _installed = True
