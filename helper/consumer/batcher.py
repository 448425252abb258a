"""Group actions that arrive close together into one build. Pure: the caller owns time.

A batch opens when its first action arrives and closes `window_s` later, or as soon as
it holds `max_size` actions, so a scale-out of ten instances is one deploy while a lone
launch waits no longer than the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass
class _Open(Generic[T]):
    opened_at: float
    items: list[T] = field(default_factory=list)


class Batcher(Generic[K, T]):
    def __init__(self, window_s: float, max_size: int) -> None:
        self.window_s = window_s
        self.max_size = max_size
        self._open: dict[K, _Open[T]] = {}
        self._full: list[tuple[K, list[T]]] = []

    def add(self, key: K, item: T, now: float) -> None:
        batch = self._open.setdefault(key, _Open(opened_at=now))
        batch.items.append(item)
        if len(batch.items) >= self.max_size:
            self._full.append((key, batch.items))
            del self._open[key]

    def due(self, now: float) -> list[tuple[K, list[T]]]:
        ready, self._full = self._full, []
        for key in [k for k, b in self._open.items() if now - b.opened_at >= self.window_s]:
            ready.append((key, self._open.pop(key).items))
        return ready

    def seconds_to_next(self, now: float) -> float | None:
        if self._full:
            return 0.0
        if not self._open:
            return None
        return max(0.0, min(b.opened_at + self.window_s for b in self._open.values()) - now)

    def drain(self) -> list[tuple[K, list[T]]]:
        """Everything still open, e.g. to release it on shutdown."""
        ready = self._full + [(k, b.items) for k, b in self._open.items()]
        self._full, self._open = [], {}
        return ready

    def __len__(self) -> int:
        return sum(len(b.items) for b in self._open.values()) + sum(len(i) for _, i in self._full)
