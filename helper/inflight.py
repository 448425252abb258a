"""Which lifecycle actions this consumer is working on, and which it finished lately.

A duplicate SQS delivery, a late notification for an instance that reconciliation
already picked up, or a message redelivered while its build runs all attach to the
action already in flight instead of starting a second deployment.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from helper.action import LifecycleAction
from helper.queue import Message

# Remember this many finished actions, so a duplicate that arrives after we completed
# and deleted the first copy is deleted at once (a scale-out of 200 fits many times).
RECENTLY_DONE_MAX = 10_000


def identity(action: LifecycleAction) -> tuple[str, str, str]:
    # Not the token: a reconciled action has none, and must meet its notification.
    return (action.group, action.instance_id, action.transition)


@dataclass
class Tracked:
    action: LifecycleAction
    received_at: float  # monotonic seconds, when the first message or discovery arrived
    messages: list[Message] = field(default_factory=list)
    gone: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def attach(self, message: Message) -> None:
        with self._lock:
            self.messages.append(message)

    def take_messages(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def drop(self, message: Message) -> None:
        with self._lock:
            self.messages = [m for m in self.messages if m.receipt_handle != message.receipt_handle]


class InFlight:
    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tracked: dict[tuple, Tracked] = {}
        self._done: OrderedDict[tuple, str] = OrderedDict()

    def admit(self, action: LifecycleAction, message: Message | None) -> tuple[str, Tracked | None]:
        """("new", tracked) | ("duplicate", tracked) | ("done", None)."""
        key = identity(action)
        with self._lock:
            if key in self._done and (action.token is None or self._done[key] in (action.token, "")):
                return "done", None
            tracked = self._tracked.get(key)
            if tracked is not None:
                if message is not None:
                    tracked.attach(message)
                # A reconciled action learns its token when the notification arrives.
                if tracked.action.token is None and action.token is not None:
                    tracked.action = action
                return "duplicate", tracked
            tracked = Tracked(action, self._clock(), [message] if message else [])
            self._tracked[key] = tracked
            return "new", tracked

    def finish(self, tracked: Tracked, completed: bool) -> None:
        """Forget an action; remember it as done only if its lifecycle action was completed."""
        key = identity(tracked.action)
        with self._lock:
            if self._tracked.get(key) is tracked:
                del self._tracked[key]
            if completed:
                self._done[key] = tracked.action.token or ""
                while len(self._done) > RECENTLY_DONE_MAX:
                    self._done.popitem(last=False)

    def covers(self, group: str, instance_id: str, transition: str) -> bool:
        with self._lock:
            return (group, instance_id, transition) in self._tracked

    def __len__(self) -> int:
        with self._lock:
            return len(self._tracked)
