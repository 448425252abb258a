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
from enum import Enum
from typing import Callable

from helper.consumer.action import LifecycleAction
from helper.consumer.sqs import Message

# Remember this many finished actions, so a duplicate that arrives after we completed
# and deleted the first copy is deleted at once (a scale-out of 200 fits many times).
RECENTLY_DONE_MAX = 10_000


class Admission(str, Enum):
    """What admitting an action did. A str as well, so a table of expected values can name it."""

    NEW = "new"  # first seen: it joins a batch
    DUPLICATE = "duplicate"  # in flight already: the message joins its claim
    DONE = "done"  # completed lately: the message is only deleted


def identity(action: LifecycleAction) -> tuple[str, str, str, bool]:
    # Not the token: a reconciled action has none, and must meet its notification. Whether it
    # goes into a warm pool is part of it: an instance's launch into the pool and its later
    # launch out of it are two actions of one transition, and a reconciled (tokenless)
    # completion of the first must not swallow the second (issue 19 item 11).
    return (action.group, action.instance_id, action.transition, action.launching and action.into_warm_pool)


@dataclass
class Claim:
    """One token's claim to be an instance's action, with the messages that carry it.

    A copy of a notification with another token claims the same instance: only AWS can say
    which token is real (a heartbeat with a forged one is a ValidationError), so every
    claim is confirmed by AWS before it is served, and a refused one is dead-lettered.
    """

    action: LifecycleAction
    messages: list[Message] = field(default_factory=list)
    confirmed: bool = False  # AWS accepted a heartbeat for it
    rejected: bool = False  # AWS refused it; its messages went to the dead-letter queue

    def rank(self) -> tuple[bool, bool]:
        # Confirmed before unconfirmed; a token before none (it completes exactly this action).
        return (not self.confirmed, self.action.token is None)


@dataclass
class Schedule:
    """When an action's upkeep is next due, in monotonic seconds. It lives on the action, not on
    the deployment, so an action handed to another deployment keeps its timers."""

    heartbeat_at: float | None = None  # None: at once
    heartbeat_failures: int = 0
    renew_at: dict[str, float] = field(default_factory=dict)  # receipt handle -> when to renew its invisibility


class Tracked:
    """One instance's action for one transition, and every claim made for it."""

    def __init__(self, action: LifecycleAction, received_at: float, messages: list[Message] | None = None) -> None:
        self.claims = [Claim(action, list(messages or []))]
        self.received_at = received_at  # monotonic seconds, when the first message or discovery arrived
        self.gone = False  # AWS ended the action without us
        self.rejected = False  # no claim checked out with AWS: nothing to deploy
        self.schedule = Schedule()
        self._lock = threading.RLock()

    def served(self) -> Claim:
        """The claim heartbeats and completion use: the best one not rejected (by arrival on ties)."""
        with self._lock:
            live = [c for c in self.claims if not c.rejected] or self.claims
            return min(live, key=Claim.rank)

    @property
    def action(self) -> LifecycleAction:
        return self.served().action

    @property
    def messages(self) -> list[Message]:
        return list(self.served().messages)

    def sent_ms(self) -> int | None:
        """When SQS got the earliest message of the served claim (SentTimestamp, epoch ms)."""
        return min((m.sent_at_ms for m in self.messages if m.sent_at_ms > 0), default=None)

    def claim(self, action: LifecycleAction, message: Message | None) -> None:
        with self._lock:
            same = next((c for c in self.claims if c.action.token == action.token and not c.rejected), None)
            if same is None:
                same = Claim(action)
                self.claims.append(same)
            if message is not None:
                same.messages.append(message)

    def unjudged(self) -> list[Claim]:
        """Claims with a token that AWS has not answered for yet, besides the served one."""
        with self._lock:
            served = self.served()
            return [c for c in self.claims if c is not served and c.action.token
                    and not c.confirmed and not c.rejected]

    def others(self) -> list[Claim]:
        """Live claims besides the served one (their messages are released, not deleted, at the end)."""
        with self._lock:
            served = self.served()
            return [c for c in self.claims if c is not served and not c.rejected]

    # State changes, each under the lock: a deployment thread heartbeats and judges claims while
    # the receive loop attaches new ones and parked launches are tended (issue 20).

    def reject(self, claim: Claim) -> None:
        """AWS refused this claim; the next one (if any) is served, and heartbeaten at once."""
        with self._lock:
            claim.rejected, claim.messages = True, []
            if all(c.rejected for c in self.claims):
                self.rejected = True
            self.schedule.heartbeat_at = None

    def confirm(self, claim: Claim) -> None:
        """AWS accepted a heartbeat for this claim."""
        with self._lock:
            claim.confirmed = True

    def mark_gone(self) -> None:
        """AWS ended the action without us (timed out, or completed by someone else)."""
        with self._lock:
            self.gone = True

    def heartbeat_ok(self, next_at: float) -> None:
        with self._lock:
            self.schedule.heartbeat_failures = 0
            self.schedule.heartbeat_at = next_at

    def heartbeat_failed(self, now: float, backoff: Callable[[int], float]) -> int:
        """Count a failed heartbeat and schedule the next try after `backoff(attempts)`; the attempts."""
        with self._lock:
            self.schedule.heartbeat_failures += 1
            self.schedule.heartbeat_at = now + backoff(self.schedule.heartbeat_failures)
            return self.schedule.heartbeat_failures

    def take_messages(self) -> list[Message]:
        """Every message of a live claim: all must stay invisible while this action is worked on."""
        with self._lock:
            return [m for c in self.claims if not c.rejected for m in c.messages]

    def drop(self, message: Message) -> None:
        with self._lock:
            for c in self.claims:
                c.messages = [m for m in c.messages if m.receipt_handle != message.receipt_handle]


class InFlight:
    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tracked: dict[tuple, Tracked] = {}
        self._done: OrderedDict[tuple, str] = OrderedDict()

    def admit(self, action: LifecycleAction, message: Message | None) -> tuple[Admission, Tracked | None]:
        """(NEW, tracked) | (DUPLICATE, tracked) | (DONE, None)."""
        key = identity(action)
        with self._lock:
            if key in self._done and (action.token is None or self._done[key] in (action.token, "")):
                return Admission.DONE, None
            tracked = self._tracked.get(key)
            if tracked is not None:
                # A copy joins its claim; another token (or a reconciled action's first one)
                # is a claim of its own, until AWS says which is real.
                tracked.claim(action, message)
                return Admission.DUPLICATE, tracked
            tracked = Tracked(action, self._clock(), [message] if message else [])
            self._tracked[key] = tracked
            return Admission.NEW, tracked

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

    def covers(self, action: LifecycleAction) -> bool:
        with self._lock:
            return identity(action) in self._tracked

    def __len__(self) -> int:
        with self._lock:
            return len(self._tracked)
