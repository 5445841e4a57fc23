"""Slows password guessing: too many failed logins for one address from one client → 429."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class LoginLimiter:
    def __init__(
        self,
        *,
        attempts: int = 5,
        window_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._attempts = attempts
        self._window = window_seconds
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        cutoff = self._clock() - self._window
        while failures and failures[0] < cutoff:
            failures.popleft()
        return failures

    def blocked(self, client: str, email: str) -> bool:
        return len(self._recent((client, email.lower()))) >= self._attempts

    def failed(self, client: str, email: str) -> None:
        if len(self._failures) > 100_000:
            self._failures.clear()
        self._recent((client, email.lower())).append(self._clock())

    def succeeded(self, client: str, email: str) -> None:
        self._failures.pop((client, email.lower()), None)
