"""Realtime fan-out of committed events to the agents' WebSockets, filtered by who may see what."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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


@dataclass(frozen=True, slots=True)
class Cutoff:
    """Why the server ended an event stream: the WebSocket close code and message it sends.

    4001 means the credential no longer holds (log in again); 4002 means the stream's
    permissions changed (reconnect with `since=` and be authorised afresh)."""

    code: int
    message: str


TOO_SLOW = Cutoff(4000, "too slow; reconnect with since=")
LOGGED_OUT = Cutoff(4001, "logged out")
TOKEN_REVOKED = Cutoff(4001, "token revoked")
DEACTIVATED = Cutoff(4001, "account deactivated")
CREDENTIAL_EXPIRED = Cutoff(4001, "session or token no longer valid; log in again")
ROLE_CHANGED = Cutoff(4002, "role changed; reconnect with since=")


@dataclass(eq=False)
class Subscriber:
    principal: Principal
    credential: str | None = None
    """The hash of the session or bearer token the stream was opened with."""
    queue: asyncio.Queue[Published | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1000)
    )
    overflowed: bool = False
    cutoff: Cutoff | None = None
    """Set when the stream was cut off; nothing more may be sent on it."""


class Hub:
    """In-process event hub (the embedded default). A subscriber that cannot keep up is cut off
    and reconnects with `since=`, catching up from the event log instead of losing events."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()

    def subscribe(self, principal: Principal, *, credential: str | None = None) -> Subscriber:
        subscriber = Subscriber(principal, credential)
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

    def disconnect_agent(self, agent_id: int, cutoff: Cutoff) -> int:
        """End every stream of the agent (deactivated); returns how many were open.

        Only this process's streams: other web nodes notice at their next credential check."""
        return self._cut([s for s in self._subscribers if s.principal.id == agent_id], cutoff)

    def disconnect_credential(self, credential: str, cutoff: Cutoff) -> int:
        """End the streams opened with one session or token (logged out, revoked), leaving the
        agent's other sessions alone; returns how many were open."""
        return self._cut([s for s in self._subscribers if s.credential == credential], cutoff)

    def update_agent(
        self, agent_id: int, *, role: str, team_ids: frozenset[int] | None = None
    ) -> int:
        """Bring the agent's open streams in line with a changed account (`team_ids=None`: teams
        unchanged). Changed teams apply from the next event on; a changed role ends the stream,
        so that the client reconnects and its replay and UI follow the new role. Returns how many
        streams were ended."""
        ended = []
        for subscriber in list(self._subscribers):
            if subscriber.principal.id != agent_id:
                continue
            if subscriber.principal.role != role:
                ended.append(subscriber)
            elif team_ids is not None:
                subscriber.principal = dataclasses.replace(subscriber.principal, team_ids=team_ids)
        return self._cut(ended, ROLE_CHANGED)

    def _cut(self, subscribers: Sequence[Subscriber], cutoff: Cutoff) -> int:
        for subscriber in subscribers:
            subscriber.cutoff = cutoff
            self.unsubscribe(subscriber)
            # What is queued was meant for a credential that no longer holds: drop it.
            while not subscriber.queue.empty():
                subscriber.queue.get_nowait()
            subscriber.queue.put_nowait(None)
        if subscribers:
            logger.info("cut off %s event stream(s): %s", len(subscribers), cutoff.message)
        return len(subscribers)

    async def close(self) -> None:
        for subscriber in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.queue.put_nowait(None)
        self._subscribers.clear()
