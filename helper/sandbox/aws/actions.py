"""Pending lifecycle actions of the sandbox: who waits, until when, and the thread that notices.

Time is sandbox time from a scalable clock, so a test can let a 30 s heartbeat timeout
(the smallest AWS accepts) expire in half a real second. Nothing here touches moto:
lifecycle.py decides what an expired action means.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

# AWS: the global timeout is 100 x HeartbeatTimeout, capped at 48 hours.
GLOBAL_TIMEOUT_FACTOR = 100
GLOBAL_TIMEOUT_CAP_S = 172_800

# Real seconds between timeout checks: short enough that with a fast clock a replacement's
# notification appears well inside a test's polling deadline, long enough to cost nothing.
TICK_INTERVAL_S = 0.02

class SandboxClock:
    """Monotonic seconds that run `scale` times faster than real time."""

    def __init__(self, scale: float = 1.0) -> None:
        self._guard = threading.Lock()
        self._scale = 1.0
        self._base_real_s = time.monotonic()
        self._base_sandbox_s = 0.0
        self.set_scale(scale)

    @property
    def scale(self) -> float:
        return self._scale

    def now_s(self) -> float:
        with self._guard:
            return self._base_sandbox_s + (time.monotonic() - self._base_real_s) * self._scale

    def set_scale(self, scale: float) -> None:
        scale = float(scale)
        if not scale > 0:
            raise ValueError(f"time scale must be > 0, got {scale}")
        now_s = self.now_s()
        with self._guard:
            # Rebase so sandbox time stays continuous: deadlines already set keep their meaning.
            self._base_sandbox_s = now_s
            self._base_real_s = time.monotonic()
            self._scale = scale


def global_timeout_s(heartbeat_timeout_s: int) -> int:
    return min(GLOBAL_TIMEOUT_FACTOR * heartbeat_timeout_s, GLOBAL_TIMEOUT_CAP_S)


@dataclass
class PendingAction:
    """One instance waiting in Pending:Wait or Terminating:Wait for one hook."""

    token: str
    instance_id: str
    group_name: str
    hook_name: str
    transition: str
    default_result: str
    heartbeat_timeout_s: int
    account_id: str
    region: str
    heartbeat_deadline_s: float
    global_deadline_s: float

    def deadline_s(self) -> float:
        return min(self.heartbeat_deadline_s, self.global_deadline_s)


class ActionBook:
    """The active actions, by token. Callers hold SandboxState.lock."""

    def __init__(self, clock: SandboxClock) -> None:
        self._clock = clock
        self._by_token: dict[str, PendingAction] = {}

    def start(
        self,
        *,
        instance_id: str,
        group_name: str,
        hook_name: str,
        transition: str,
        default_result: str,
        heartbeat_timeout_s: int,
        account_id: str,
        region: str,
    ) -> PendingAction:
        now_s = self._clock.now_s()
        action = PendingAction(
            token=str(uuid.uuid4()),
            instance_id=instance_id,
            group_name=group_name,
            hook_name=hook_name,
            transition=transition,
            default_result=default_result,
            heartbeat_timeout_s=heartbeat_timeout_s,
            account_id=account_id,
            region=region,
            heartbeat_deadline_s=now_s + heartbeat_timeout_s,
            global_deadline_s=now_s + global_timeout_s(heartbeat_timeout_s),
        )
        self._by_token[action.token] = action
        return action

    def by_token(self, token: str) -> PendingAction | None:
        return self._by_token.get(token)

    def by_instance(self, instance_id: str, group_name: str, hook_name: str) -> PendingAction | None:
        return next(
            (
                a
                for a in self._by_token.values()
                if a.instance_id == instance_id and a.group_name == group_name and a.hook_name == hook_name
            ),
            None,
        )

    def heartbeat(self, action: PendingAction) -> None:
        action.heartbeat_deadline_s = self._clock.now_s() + action.heartbeat_timeout_s

    def finish(self, action: PendingAction) -> None:
        self._by_token.pop(action.token, None)

    def drop_instance(self, instance_id: str) -> None:
        for token in [t for t, a in self._by_token.items() if a.instance_id == instance_id]:
            del self._by_token[token]

    def drop_group(self, group_name: str) -> None:
        for token in [t for t, a in self._by_token.items() if a.group_name == group_name]:
            del self._by_token[token]

    def take_expired(self) -> list[PendingAction]:
        now_s = self._clock.now_s()
        expired = [a for a in self._by_token.values() if a.deadline_s() <= now_s]
        for action in expired:
            del self._by_token[action.token]
        return expired

    def active(self) -> list[PendingAction]:
        return list(self._by_token.values())

    def clear(self) -> None:
        self._by_token.clear()


class Ticker:
    """A daemon thread calling on_tick every interval_s until stop()."""

    def __init__(self, on_tick: Callable[[], None], interval_s: float = TICK_INTERVAL_S) -> None:
        self._on_tick = on_tick
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-lifecycle-ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._on_tick()
            except Exception:  # noqa: BLE001 - the thread's error boundary: one bad tick must not end all timeouts
                log.exception("sandbox lifecycle tick failed")
