"""Close a launch batch before its window ends when the site's waiting launches fill a build.

One consumer that receives a whole scale-out sees its batch fill up and queues at once. Each of
several replicas receives only a share, so every replica's batch would wait out its whole window
(issue 19 item 25: p95 notification -> build queued 1.5x that of one replica). So, some way into a
launch batch's window, the consumer asks once whether the batch's own actions plus the site's other
waiting launches that no build of ours names (passengers.find) would fill a build. If they would,
the batch goes now, and its build takes the others along.

The question runs on a thread of its own, so the receive loop never waits on Auto Scaling or
Jenkins for it. An error or a late answer changes nothing: the window still closes the batch.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from helper.consumer import passengers
from helper.consumer.action import LAUNCHING
from helper.consumer.autoscaling import AutoScalingError, Throttled
from helper.consumer.batcher import Batcher
from helper.consumer.context import Context
from helper.consumer.inflight import Tracked
from helper.consumer.jenkins_client import JenkinsUnavailable
from helper.consumer.plan import BatchKey

log = logging.getLogger(__name__)

# When to ask, as a share of the batch window: late enough that a scale-out's notifications
# have arrived across the replicas, early enough to save most of the window.
ASK_AT_SHARE = 0.25
ASK_AT_MAX_S = 2.0

Ask = tuple[BatchKey, float]  # a batch: its key and when it opened


class EarlyClose:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.ask_after_s = min(ctx.config.batch_window_s * ASK_AT_SHARE, ASK_AT_MAX_S)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="early-close")
        self._asking: dict[Ask, Future] = {}
        self._asked: set[Ask] = set()  # answered; forgotten once the batch is closed

    @staticmethod
    def _launches(key: BatchKey) -> bool:
        return key.transition == LAUNCHING and not key.warm and key.job is not None

    def _due(self, batcher: Batcher[BatchKey, Tracked]) -> list[tuple[Ask, list[Tracked]]]:
        return [((key, opened), items) for key, opened, items in batcher.open_batches()
                if self._launches(key) and (key, opened) not in self._asking and (key, opened) not in self._asked]

    def tend(self, batcher: Batcher[BatchKey, Tracked], now: float) -> list[tuple[BatchKey, list[Tracked]]]:
        """Ask about each launch batch that is old enough; close those whose answer came back yes."""
        for ask, items in self._due(batcher):
            if now - ask[1] >= self.ask_after_s:
                own = frozenset(t.action.instance_id for t in items)
                self._asking[ask] = self._pool.submit(self._fills, ask[0], own)
        still_open = {(key, opened) for key, opened, _ in batcher.open_batches()}
        ready = []
        for ask, future in list(self._asking.items()):
            if not future.done():
                continue
            del self._asking[ask]
            self._asked.add(ask)
            if ask in still_open and future.result():
                items = batcher.take(ask[0])
                if items:
                    self.ctx.metrics.batches_closed_early.inc()
                    log.debug("event=batch_closed_early site=%s actions=%d", ask[0].site, len(items))
                    ready.append((ask[0], items))
        self._asked &= still_open
        return ready

    def seconds_to_next(self, batcher: Batcher[BatchKey, Tracked], now: float, poll_s: float) -> float | None:
        """How long the receive loop may wait before tend() has something to do."""
        if self._asking:
            return poll_s
        waits = [max(0.0, opened + self.ask_after_s - now) for (_, opened), _ in self._due(batcher)]
        return min(waits, default=None)

    def _fills(self, key: BatchKey, own: frozenset[str]) -> bool:
        room = self.ctx.config.batch_max_instances - len(own)
        try:
            found = passengers.find(self.ctx.autoscaling, self.ctx.jobs, self.ctx.config, key.site, key.job,
                                    set(own), room)
        except (AutoScalingError, Throttled, JenkinsUnavailable) as exc:
            log.debug("event=early_close_unknown site=%s error=%r", key.site, str(exc))
            return False
        return room > 0 and len(found) >= room

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
