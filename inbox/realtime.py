"""Realtime fan-out of committed events to the agents' WebSockets, filtered by who may see what,
and the ephemeral collision signals (who is viewing or typing in a conversation)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from inbox.accounts import Principal
from routing.events import Published

logger = logging.getLogger(__name__)

TYPING_SECONDS = 5.0
"""A typing signal holds this long unless the agent signals again (the web app does every 2.5 s)."""


def can_see(principal: Principal, team_id: int | None, assignee_id: int | None) -> bool:
    """Admins see everything; an agent sees their own, their teams' and team-less conversations."""
    if principal.is_admin or assignee_id == principal.id or team_id is None:
        return True
    return team_id in principal.team_ids


def may_receive(principal: Principal, event: Published) -> bool:
    """Whether the agent's streams get the event, live or replayed.

    An event addressed to one agent (a notification) reaches that agent only; a conversation's
    event whoever can see the conversation; a customer's event outside any conversation (edited,
    merged) admins and whoever can see one of that customer's conversations; the rest (labels,
    canned responses, agents, teams) carries no customer data and reaches everyone."""
    if event.recipient_id is not None:
        return event.recipient_id == principal.id
    if event.conversation_id is not None:
        return can_see(principal, event.team_id, event.assignee_id)
    if event.customer_id is not None:
        return principal.is_admin or any(can_see(principal, *scope) for scope in event.scopes)
    return True


@dataclass(frozen=True, slots=True)
class Signal:
    """An ephemeral message for a stream (a collision notice): sent as is, never logged."""

    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return self.payload


@dataclass(frozen=True, slots=True)
class Cutoff:
    """Why the server ended an event stream: the WebSocket close code and message it sends.

    4001 means the credential no longer holds (log in again); 4002 means the stream's
    permissions changed (reconnect with `since=` and be authorised afresh)."""

    code: int
    message: str


TOO_SLOW = Cutoff(4000, "too slow; reconnect with since=")
MISSED = Cutoff(4000, "events may have been missed; reconnect with since=")
LOGGED_OUT = Cutoff(4001, "logged out")
TOKEN_REVOKED = Cutoff(4001, "token revoked")
DEACTIVATED = Cutoff(4001, "account deactivated")
CREDENTIAL_EXPIRED = Cutoff(4001, "session or token no longer valid; log in again")
ROLE_CHANGED = Cutoff(4002, "role changed; reconnect with since=")


SUBSCRIBER_BACKLOG = 10_000
"""Events a stream may fall behind by (a burst of a thousand messages makes about three thousand)
before it is cut off and told to catch up with `since=`."""


@dataclass(eq=False)
class Subscriber:
    principal: Principal
    credential: str | None = None
    """The hash of the session or bearer token the stream was opened with."""
    queue: asyncio.Queue[Published | Signal | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=SUBSCRIBER_BACKLOG)
    )
    overflowed: bool = False
    cutoff: Cutoff | None = None
    """Set when the stream was cut off; nothing more may be sent on it."""
    viewing: int | None = None
    """The conversation this stream's agent has open, as the client last said."""

    def signal(self, payload: dict[str, Any]) -> None:
        """Queue an ephemeral message; dropped when the stream is behind (it is only a hint)."""
        if self.cutoff is None:
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(Signal(payload))


REMOTE_ROOM_SECONDS = 30.0
"""How long another process's word on who views a conversation holds unless repeated."""


@dataclass(frozen=True, slots=True)
class _RemoteRoom:
    team_id: int | None
    assignee_id: int | None
    viewers: tuple[tuple[int, str], ...]
    typing: frozenset[int]
    expires: float


@dataclass
class _Room:
    """Who is in one conversation right now; `team_id` and `assignee_id` say who may know."""

    team_id: int | None
    assignee_id: int | None
    viewers: set[Subscriber] = field(default_factory=set)
    typing: dict[int, asyncio.TimerHandle] = field(default_factory=dict)
    """Agent id → the timer that ends their typing."""


class Hub:
    """In-process event hub (the embedded default). A subscriber that cannot keep up is cut off
    and reconnects with `since=`, catching up from the event log instead of losing events.

    It also keeps who is viewing or typing in which conversation and tells the agents who can see
    it (`view`, `typing`; a stream's viewing ends when it unsubscribes). In process only: with
    several web nodes, an implementation of the same methods over Redis pub/sub replaces it."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self._rooms: dict[int, _Room] = {}
        self.on_typing: Callable[[int, str], None] | None = None
        """Called with (conversation id, agent name) each time an agent signals typing (the
        website chat shows it to the visitor)."""
        self.relay: Callable[[dict[str, Any]], None] | None = None
        """At scale: sends this process's signals (who views or types where, a customer
        typing) to the other web processes, whose hubs `receive` them."""
        self._remote: dict[int, dict[str, _RemoteRoom]] = {}
        """Conversation id → process → who views and types there, as that process last said."""

    def subscribe(self, principal: Principal, *, credential: str | None = None) -> Subscriber:
        subscriber = Subscriber(principal, credential)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        self._leave(subscriber)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def publish(self, events: Sequence[Published]) -> None:
        for event in events:
            # A transfer moves who may know about the conversation's viewers too.
            if event.conversation_id is not None and (
                room := self._rooms.get(event.conversation_id)
            ):
                room.team_id, room.assignee_id = event.team_id, event.assignee_id
        for subscriber in list(self._subscribers):
            for event in events:
                if not may_receive(subscriber.principal, event):
                    continue
                try:
                    subscriber.queue.put_nowait(event)
                except asyncio.QueueFull:
                    subscriber.overflowed = True
                    self.unsubscribe(subscriber)
                    break

    def view(
        self,
        subscriber: Subscriber,
        conversation_id: int | None,
        *,
        team_id: int | None = None,
        assignee_id: int | None = None,
    ) -> None:
        """The stream's agent opened `conversation_id` (`None`: none). The caller has checked
        that they may see it, whose team and assignee are given. The others who can see it are
        told, and the newcomer gets the current state."""
        if subscriber.viewing == conversation_id or subscriber not in self._subscribers:
            return
        self._leave(subscriber)
        if conversation_id is None:
            return
        room = self._rooms.setdefault(conversation_id, _Room(team_id, assignee_id))
        room.team_id, room.assignee_id = team_id, assignee_id
        room.viewers.add(subscriber)
        subscriber.viewing = conversation_id
        self._announce(conversation_id, room, skip=subscriber)
        subscriber.signal(self._state(conversation_id, room))

    def typing(self, subscriber: Subscriber, conversation_id: int) -> None:
        """The stream's agent is typing in the conversation they view (anything else is ignored).
        It holds for TYPING_SECONDS unless signalled again; the others are told when it starts
        and when it ends."""
        room = self._rooms.get(conversation_id)
        if subscriber.viewing != conversation_id or room is None:
            return
        agent_id = subscriber.principal.id
        if self.on_typing is not None:
            self.on_typing(conversation_id, subscriber.principal.name)
        if self.relay is not None:
            self.relay(
                {
                    "kind": "agent_typing",
                    "conversation_id": conversation_id,
                    "name": subscriber.principal.name,
                }
            )
        started = agent_id not in room.typing
        if not started:
            room.typing[agent_id].cancel()
        loop = asyncio.get_running_loop()
        room.typing[agent_id] = loop.call_later(
            TYPING_SECONDS, self._stop_typing, conversation_id, agent_id
        )
        if started:
            self._announce(conversation_id, room, skip=subscriber)

    def tell(
        self,
        conversation_id: int,
        payload: dict[str, Any],
        *,
        team_id: int | None,
        assignee_id: int | None,
    ) -> None:
        """Send an ephemeral signal about a conversation (a customer typing) to the streams of
        the agents who can see it, here and (at scale) on the other web processes."""
        self._tell_here(conversation_id, payload, team_id=team_id, assignee_id=assignee_id)
        if self.relay is not None:
            self.relay(
                {
                    "kind": "tell",
                    "conversation_id": conversation_id,
                    "payload": payload,
                    "team_id": team_id,
                    "assignee_id": assignee_id,
                }
            )

    def _tell_here(
        self,
        conversation_id: int,
        payload: dict[str, Any],
        *,
        team_id: int | None,
        assignee_id: int | None,
    ) -> None:
        for subscriber in self._subscribers:
            if can_see(subscriber.principal, team_id, assignee_id):
                subscriber.signal({**payload, "conversation_id": conversation_id})

    def receive(self, message: dict[str, Any], origin: str) -> None:
        """A signal another web process relayed (see `relay`). Malformed ones are ignored."""
        try:
            kind, conversation_id = message["kind"], int(message["conversation_id"])
            if kind == "tell":
                self._tell_here(
                    conversation_id,
                    dict(message["payload"]),
                    team_id=message.get("team_id"),
                    assignee_id=message.get("assignee_id"),
                )
            elif kind == "agent_typing" and self.on_typing is not None:
                self.on_typing(conversation_id, str(message["name"]))
            elif kind == "room":
                remote = _RemoteRoom(
                    team_id=message.get("team_id"),
                    assignee_id=message.get("assignee_id"),
                    viewers=tuple((int(i), str(n)) for i, n in message["viewers"]),
                    typing=frozenset(int(i) for i in message["typing"]),
                    expires=time.monotonic() + REMOTE_ROOM_SECONDS,
                )
                rooms = self._remote.setdefault(conversation_id, {})
                if remote.viewers:
                    rooms[origin] = remote
                else:
                    rooms.pop(origin, None)
                self._announce_merged(conversation_id, remote.team_id, remote.assignee_id)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("ignored a malformed relayed signal: %s", exc)

    def relay_rooms(self) -> None:
        """Say again who views what here (other processes forget what is not repeated within
        REMOTE_ROOM_SECONDS: a process that died leaves no ghost viewers behind)."""
        for conversation_id, room in list(self._rooms.items()):
            self._relay_room(conversation_id, room)

    def collision(self, conversation_id: int) -> dict[str, Any] | None:
        """The current collision state of a conversation (`None` when nobody is in it)."""
        room = self._rooms.get(conversation_id)
        if room is None and not self._remote_rooms(conversation_id):
            return None
        return self._state(conversation_id, room)

    def _stop_typing(self, conversation_id: int, agent_id: int) -> None:
        room = self._rooms.get(conversation_id)
        if room is not None and room.typing.pop(agent_id, None) is not None:
            self._announce(conversation_id, room)

    def _leave(self, subscriber: Subscriber) -> None:
        conversation_id, subscriber.viewing = subscriber.viewing, None
        room = self._rooms.get(conversation_id) if conversation_id is not None else None
        if room is None:
            return
        room.viewers.discard(subscriber)
        agent_id = subscriber.principal.id
        if agent_id in room.typing and not any(v.principal.id == agent_id for v in room.viewers):
            room.typing.pop(agent_id).cancel()
        assert conversation_id is not None
        self._announce(conversation_id, room)
        if not room.viewers:
            del self._rooms[conversation_id]

    def _remote_rooms(self, conversation_id: int) -> list[_RemoteRoom]:
        rooms = self._remote.get(conversation_id)
        if not rooms:
            return []
        now = time.monotonic()
        for origin in [o for o, r in rooms.items() if r.expires < now]:
            del rooms[origin]
        if not rooms:
            del self._remote[conversation_id]
        return list(rooms.values())

    def _state(self, conversation_id: int, room: _Room | None) -> dict[str, Any]:
        viewers: dict[int, str] = {}
        typing: set[int] = set()
        if room is not None:
            for viewer in sorted(room.viewers, key=lambda v: v.principal.id):
                viewers.setdefault(viewer.principal.id, viewer.principal.name)
            typing.update(room.typing)
        for remote in self._remote_rooms(conversation_id):
            for agent_id, name in remote.viewers:
                viewers.setdefault(agent_id, name)
            typing.update(remote.typing)
        return {
            "type": "collision",
            "conversation_id": conversation_id,
            "viewing": [{"id": i, "name": name} for i, name in sorted(viewers.items())],
            "typing": [{"id": i, "name": viewers[i]} for i in sorted(typing) if i in viewers],
        }

    def _announce(
        self, conversation_id: int, room: _Room, *, skip: Subscriber | None = None
    ) -> None:
        self._announce_merged(conversation_id, room.team_id, room.assignee_id, skip=skip)
        self._relay_room(conversation_id, room)

    def _announce_merged(
        self,
        conversation_id: int,
        team_id: int | None,
        assignee_id: int | None,
        *,
        skip: Subscriber | None = None,
    ) -> None:
        state = self._state(conversation_id, self._rooms.get(conversation_id))
        for subscriber in self._subscribers:
            if subscriber is not skip and can_see(subscriber.principal, team_id, assignee_id):
                subscriber.signal(state)

    def _relay_room(self, conversation_id: int, room: _Room) -> None:
        if self.relay is None:
            return
        viewers: dict[int, str] = {}
        for viewer in room.viewers:
            viewers.setdefault(viewer.principal.id, viewer.principal.name)
        self.relay(
            {
                "kind": "room",
                "conversation_id": conversation_id,
                "team_id": room.team_id,
                "assignee_id": room.assignee_id,
                "viewers": sorted(viewers.items()),
                "typing": sorted(room.typing),
            }
        )

    def disconnect_agent(self, agent_id: int, cutoff: Cutoff) -> int:
        """End every stream of the agent (deactivated); returns how many were open.

        Only this process's streams: other web nodes notice at their next credential check."""
        return self._cut([s for s in self._subscribers if s.principal.id == agent_id], cutoff)

    def disconnect_all(self, cutoff: Cutoff) -> int:
        """End every stream (events between processes may have been lost: each reconnects
        with `since=` and catches up from the event log)."""
        return self._cut(list(self._subscribers), cutoff)

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
        for room in self._rooms.values():
            for timer in room.typing.values():
                timer.cancel()
        self._rooms.clear()
        for subscriber in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.queue.put_nowait(None)
        self._subscribers.clear()
