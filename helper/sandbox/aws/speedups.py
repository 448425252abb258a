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

The server's host-to-backend memo (server.py) is the fourth. Tests in tests/sandbox/test_sandbox_speedups.py
hold each patched path to moto's own answer.
"""

from __future__ import annotations

import time
from typing import Any

_installed = False
# fnmatch's wildcards: an image-id filter value without any of them matches one id exactly.
_WILDCARDS = frozenset("*?[")


def _now_without_a_datetime(original, scale: float):
    """moto's unix_time (scale 1) or unix_time_millis (1000): time.time() when given no datetime."""
    def now(dt: Any = None) -> float:
        return time.time() * scale if dt is None else original(dt)

    return now


def _retention_check(self: Any, queue_name: str, message: Any) -> bool:
    """moto's SQSBackend.is_message_valid_based_on_retention_period, reading one attribute."""
    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return retain_until > time.time()


def _exact_image_lookup(original):
    def describe_images(self: Any, ami_ids: Any = None, filters: Any = None, exec_users: Any = None,
                        owners: Any = None) -> list:
        wanted = filters.get("image-id") if filters and len(filters) == 1 else None
        exact = isinstance(wanted, str) and not _WILDCARDS & set(wanted)
        if exact and not (ami_ids or exec_users or owners):
            return [self.amis[wanted]] if wanted in self.amis else []
        return original(self, ami_ids=ami_ids, filters=filters, exec_users=exec_users, owners=owners)

    return describe_images


def install() -> None:
    """Patch moto once (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.ec2.models import amis
    from moto.sqs import models as sqs

    sqs.unix_time = _now_without_a_datetime(sqs.unix_time, 1.0)
    sqs.unix_time_millis = _now_without_a_datetime(sqs.unix_time_millis, 1000.0)
    sqs.SQSBackend.is_message_valid_based_on_retention_period = _retention_check
    amis.AmiBackend.describe_images = _exact_image_lookup(amis.AmiBackend.describe_images)
    _installed = True
