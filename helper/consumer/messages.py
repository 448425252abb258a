"""What happens to an SQS message once we hold it: deleted, released, kept invisible or dead-lettered.

Written once for the receive loop, its teardown, a deployment and its checks. A failed call is
logged and counted, never raised: the message then comes back when its visibility runs out,
and is handled again (a lost delete costs a redelivery, never an action).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Iterable

from helper.consumer.action import LifecycleAction
from helper.consumer.inflight import Tracked
from helper.consumer.metrics import Metrics
from helper.consumer.sqs import Message, Queue, QueueError

log = logging.getLogger(__name__)

# Remember this many message ids we already logged as malformed, unroutable or rejected, so
# each is logged (and counted) once however often SQS redelivers it before redrive.
LOGGED_IDS_MAX = 10_000
# Renew a message's invisibility when this fraction of it is left: one slow poll
# cannot let it reappear (and be handed to another consumer) mid-build.
VISIBILITY_RENEW_FRACTION = 0.5


class Messages:
    def __init__(self, queue: Queue, metrics: Metrics) -> None:
        self._queue = queue
        self._metrics = metrics
        self._logged: OrderedDict[str, None] = OrderedDict()
        self._logged_lock = threading.Lock()  # deployments reject messages from their threads

    def log_once(self, message: Message, level: int, text: str, *args) -> bool:
        """Log `text` for the first delivery of this message only; True if it was logged now."""
        with self._logged_lock:
            if message.message_id in self._logged:
                return False
            self._logged[message.message_id] = None
            while len(self._logged) > LOGGED_IDS_MAX:
                self._logged.popitem(last=False)
        log.log(level, text, *args)
        return True

    def delete(self, message: Message) -> bool:
        """Acknowledge a message whose work is done (or that needs none); True if it is gone."""
        try:
            self._queue.delete(message)
        except QueueError as exc:
            self._metrics.aws_errors.labels("DeleteMessage").inc()
            log.warning("event=delete_failed message=%s error=%r", message.message_id, str(exc))
            return False
        self._metrics.deleted.inc()
        return True

    def delete_served(self, tracked: Tracked) -> None:
        """The served claim's messages: its action is finished."""
        for message in tracked.messages:
            if self.delete(message):
                tracked.drop(message)

    def release(self, messages: Iterable[Message]) -> None:
        """Make messages visible at once, for the next consumer (or the next round) to handle."""
        for message in messages:
            try:
                self._queue.set_visibility(message, 0)
            except QueueError as exc:
                log.warning("event=release_failed message=%s error=%r", message.message_id, str(exc))

    def keep_invisible(self, tracked: Tracked, now: float, timeout_s: int) -> None:
        """Renew the invisibility of every message of a live claim before it runs out."""
        renew_at = tracked.schedule.renew_at
        for message in tracked.take_messages():
            due = renew_at.setdefault(message.receipt_handle,
                                      tracked.received_at + timeout_s * VISIBILITY_RENEW_FRACTION)
            if now < due:
                continue
            try:
                self._queue.set_visibility(message, timeout_s)
                renew_at[message.receipt_handle] = now + timeout_s * VISIBILITY_RENEW_FRACTION
            except QueueError as exc:
                self._metrics.aws_errors.labels("ChangeMessageVisibility").inc()
                log.warning("event=visibility_failed message=%s error=%r", message.message_id, str(exc))

    def reject(self, message: Message, action: LifecycleAction, reason: str) -> None:
        """A message that did not check out with Auto Scaling: never a build, never silently deleted.

        Moved to the dead-letter queue now, where someone will see it; without one it is
        left for redrive (and checked again, but logged and counted once).
        """
        try:
            moved = self._queue.dead_letter(message)
        except QueueError as exc:
            moved = False
            self._metrics.aws_errors.labels("SendMessage").inc()
            log.warning("event=dead_letter_failed message=%s error=%r", message.message_id, str(exc))
        if self.log_once(message, logging.WARNING, "event=message_rejected message=%s action=%s reason=%s "
                         "dead_lettered=%s", message.message_id, action.reference(), reason, moved):
            self._metrics.rejected.labels(reason).inc()
