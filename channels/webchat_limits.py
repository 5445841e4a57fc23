"""Sliding-window rate limits for the website chat (per visitor, per IP). Messages are limited
in a window every web process shares at scale (`SharedLimits`, kept in Redis by the composition
root), so a visitor or address spreading messages over processes is counted once; frames,
typing and open connections are limited per process, which is what protects each one."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class Window:
    """At most `limit` events per `seconds` for each key."""

    def __init__(
        self, limit: int, seconds: float = 60.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float:
        """0 and the event counted if it is within the limit; else seconds until it would be."""
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(0.1, hits[0] + self.seconds - now)
        hits.append(now)
        return 0.0

    def forget_idle(self) -> None:
        """Drop keys with no recent events, so the table does not grow with every visitor."""
        cutoff = self._clock() - self.seconds
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= cutoff]:
            del self._hits[key]


class MessageLimit(Protocol):
    """A window that counts an event for a key and says how long to wait when over the limit
    (0: counted, go ahead)."""

    async def retry_after(self, key: str) -> float: ...


class LocalLimit:
    """A `Window` of this process as a `MessageLimit` (the embedded default)."""

    def __init__(self, window: Window) -> None:
        self.window = window

    async def retry_after(self, key: str) -> float:
        return self.window.retry_after(key)


SharedLimits = Callable[[str, int, float], MessageLimit]
"""Makes a window shared by every web process: (name, limit, seconds) → the window."""
