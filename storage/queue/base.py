"""The queue contract: durable, at-least-once, in order per key, failures dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Item:
    """One queued entry as a consumer sees it. `attempts` counts earlier failed tries."""

    id: str
    topic: str
    key: str
    payload: bytes
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class DeadItem:
    id: str
    topic: str
    key: str
    payload: bytes
    error: str
    attempts: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    pending: int
    dead: int
    lag_seconds: float = field(default=0.0, compare=False)
    """How long the oldest entry still in the queue has waited (0 when it is empty): the
    consumers' lag. Left out of comparisons: it changes by the moment."""


Handler = Callable[[Item], Awaitable[None]]
"""Processes one item. Returning acknowledges it; raising counts a failed attempt."""


@dataclass(frozen=True, slots=True)
class Handled:
    """What a handler run inside the publishing transaction did: the items it could not handle
    (by id, with the error: they stay queued for the ordinary consumer) and what to do once the
    transaction has committed (publish the events it made)."""

    failed: Mapping[str, str]
    after_commit: Callable[[], Awaitable[None]]


class Queue(Protocol):
    """Both backends implement this. Items with the same key are handed out in publish order,
    one at a time; items of different keys may be processed concurrently."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, key: str, payload: bytes) -> str:
        """Store the item durably and return its id; returns only after it is stored."""
        ...

    async def consume(self, topic: str, handler: Handler, *, stopping: asyncio.Event) -> None:
        """Process items until `stopping` is set; leaves unfinished items for another consumer."""
        ...

    async def drain(self, topic: str, handler: Handler) -> int:
        """Process what is there now and return how many items were handled (tests, tools)."""
        ...

    async def stats(self, topic: str) -> QueueStats: ...

    async def dead_letters(self, topic: str, *, limit: int = 100) -> list[DeadItem]: ...

    async def requeue_dead(self, topic: str, dead_id: str) -> bool:
        """Put a dead-lettered item back on the queue (an admin retrying it)."""
        ...


def backoff_seconds(attempts: int) -> float:
    """Delay before retry number `attempts` (1-based): 0.5 s doubling, at most a minute."""
    return float(min(60.0, 0.5 * 2 ** (attempts - 1)))
