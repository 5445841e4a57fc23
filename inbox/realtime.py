"""Realtime fan-out of committed events to the agents' WebSockets, filtered by who may see what."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from inbox.accounts import Principal
from routing.events import Published

logger = logging.getLogger(__name__)


def can_see(principal: Principal, team_id: int | None, assignee_id: int | None) -> bool:
    """Admins see everything; an agent sees their own, their teams' and team-less conversations."""
    if principal.is_admin or assignee_id == principal.id or team_id is None:
        return True
    return team_id in principal.team_ids


@dataclass(eq=False)
class Subscriber:
    principal: Principal
    queue: asyncio.Queue[Published | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1000)
    )
    overflowed: bool = False


class Hub:
    """In-process event hub (the embedded default). A subscriber that cannot keep up is cut off
    and reconnects with `since=`, catching up from the event log instead of losing events."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()

    def subscribe(self, principal: Principal) -> Subscriber:
        subscriber = Subscriber(principal)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def publish(self, events: Sequence[Published]) -> None:
        for subscriber in list(self._subscribers):
            for event in events:
                if not can_see(subscriber.principal, event.team_id, event.assignee_id):
                    continue
                try:
                    subscriber.queue.put_nowait(event)
                except asyncio.QueueFull:
                    subscriber.overflowed = True
                    self.unsubscribe(subscriber)
                    break

    async def close(self) -> None:
        for subscriber in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.queue.put_nowait(None)
        self._subscribers.clear()
