"""Recording changes in the append-only event log, and handing them to realtime after commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session

from storage.bulk import insert_ids
from storage.models import Event, utcnow


@dataclass(frozen=True, slots=True)
class Published:
    """An event as realtime subscribers receive it; `team_id` and `assignee_id` say who sees it."""

    id: int
    type: str
    conversation_id: int | None
    team_id: int | None
    assignee_id: int | None
    data: dict[str, Any]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "conversation_id": self.conversation_id,
            "team_id": self.team_id,
            "assignee_id": self.assignee_id,
            "data": self.data,
            "created_at": self.created_at.isoformat(),
        }


Notify = Callable[[Sequence[Published]], Awaitable[None]]
"""Hands committed events to realtime delivery. Called only after the transaction commits."""


async def ignore(_events: Sequence[Published]) -> None:
    return None


class ConversationLike(Protocol):
    """What events need of a conversation: the ORM row or the router's `ConversationRef`."""

    @property
    def id(self) -> int: ...
    @property
    def customer_id(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def priority(self) -> str: ...
    @property
    def assignee_id(self) -> int | None: ...
    @property
    def team_id(self) -> int | None: ...
    @property
    def last_activity_at(self) -> datetime: ...
    @property
    def waiting_since(self) -> datetime | None: ...


class MessageLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def conversation_id(self) -> int: ...
    @property
    def direction(self) -> str: ...
    @property
    def author_kind(self) -> str: ...
    @property
    def author_agent_id(self) -> int | None: ...
    @property
    def private(self) -> bool: ...
    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def delivery_status(self) -> str | None: ...
    @property
    def delivery_error(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...


def conversation_summary(conversation: ConversationLike) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "customer_id": conversation.customer_id,
        "channel": conversation.channel,
        "subject": conversation.subject,
        "status": conversation.status,
        "priority": conversation.priority,
        "assignee_id": conversation.assignee_id,
        "team_id": conversation.team_id,
        "last_activity_at": conversation.last_activity_at.isoformat(),
        "waiting_since": conversation.waiting_since.isoformat()
        if conversation.waiting_since
        else None,
    }


def message_summary(message: MessageLike) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "author_kind": message.author_kind,
        "author_agent_id": message.author_agent_id,
        "private": message.private,
        "subject": message.subject,
        "text": message.text,
        "delivery_status": message.delivery_status,
        "delivery_error": message.delivery_error,
        "created_at": message.created_at.isoformat(),
    }


@dataclass
class _Pending:
    row: dict[str, Any]
    conversation: ConversationLike | None
    id: int = 0


class EventLog:
    """Collects the events of one unit of work. They are written in one statement just before
    the transaction commits (fewer round trips than a row each) and published after it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._pending: list[_Pending] = []
        self._written = False
        event.listen(session, "before_commit", self._write)

    def add(
        self,
        type_: str,
        conversation: ConversationLike | None,
        data: dict[str, Any],
        *,
        actor_agent_id: int | None = None,
        customer_id: int | None = None,
    ) -> None:
        row = {
            "type": type_,
            "conversation_id": conversation.id if conversation else None,
            "customer_id": conversation.customer_id if conversation else customer_id,
            "actor_agent_id": actor_agent_id,
            "data": data,
            "created_at": utcnow(),
        }
        self._pending.append(_Pending(row, conversation))

    def checkpoint(self) -> int:
        return len(self._pending)

    def discard_since(self, checkpoint: int) -> None:
        """Forget events of work that was rolled back."""
        del self._pending[checkpoint:]

    def _write(self, session: Session) -> None:
        # "before_commit" also fires when a savepoint is released; only the outermost commit
        # writes, once.
        if self._written or session.in_nested_transaction() or not self._pending:
            return
        self._written = True
        ids = insert_ids(session, Event, [pending.row for pending in self._pending])
        for pending, event_id in zip(self._pending, ids, strict=True):
            pending.id = event_id

    def published(self) -> list[Published]:
        """Call after commit: the events with their ids, in the order they happened."""
        return [
            Published(
                id=pending.id,
                type=pending.row["type"],
                conversation_id=pending.row["conversation_id"],
                team_id=pending.conversation.team_id if pending.conversation else None,
                assignee_id=pending.conversation.assignee_id if pending.conversation else None,
                data=pending.row["data"],
                created_at=pending.row["created_at"],
            )
            for pending in self._pending
        ]
