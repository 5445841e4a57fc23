"""Recording changes in the append-only event log, and handing them to realtime after commit."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from storage.bulk import insert_ids
from storage.models import Conversation, Event, utcnow

logger = logging.getLogger(__name__)

REACTIONS = "pishkhan.reactions"
"""The `Session.info` key (set through `UnitOfWork.session_info`) holding the reactions that
run inside every unit of work that records events: see `Reaction`."""
MAX_REACTION_ROUNDS = 4
"""Events reactions record are reacted to in turn, up to this many rounds: a chain of
reactions can never loop."""

ADDRESSED = frozenset({"notification.created"})
"""Event types meant for one agent only: the one named by their data's `agent_id`."""

Scope = tuple[int | None, int | None]
"""A conversation's (team_id, assignee_id): what decides who may see it."""


def recipient_of(type_: str, data: dict[str, Any]) -> int | None:
    """The one agent an addressed event is for (`None`: not addressed to anyone in particular)."""
    if type_ not in ADDRESSED:
        return None
    agent_id = data.get("agent_id")
    return agent_id if isinstance(agent_id, int) else None


@dataclass(frozen=True, slots=True)
class Published:
    """An event as realtime subscribers receive it. Who may see it: `recipient_id` when set (an
    event addressed to one agent); else the conversation's `team_id` and `assignee_id`; else,
    for a customer's event outside any conversation, `scopes` (those of the customer's
    conversations); an event about neither (labels, canned responses, agents) is for everyone."""

    id: int
    type: str
    conversation_id: int | None
    team_id: int | None
    assignee_id: int | None
    data: dict[str, Any]
    created_at: datetime
    customer_id: int | None = None
    actor_agent_id: int | None = None
    """The agent who made the change (`None`: a customer, the bot or the router)."""
    recipient_id: int | None = None
    scopes: tuple[Scope, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "conversation_id": self.conversation_id,
            "customer_id": self.customer_id,
            "team_id": self.team_id,
            "assignee_id": self.assignee_id,
            "actor_agent_id": self.actor_agent_id,
            "data": self.data,
            "created_at": self.created_at.isoformat(),
        }

    def to_wire(self) -> dict[str, Any]:
        """Everything, for another process (`from_wire` reads it back): who may see it too."""
        return {
            **self.as_dict(),
            "recipient_id": self.recipient_id,
            "scopes": [list(scope) for scope in self.scopes],
        }

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> Published:
        return cls(
            id=int(value["id"]),
            type=str(value["type"]),
            conversation_id=value.get("conversation_id"),
            team_id=value.get("team_id"),
            assignee_id=value.get("assignee_id"),
            data=dict(value.get("data") or {}),
            created_at=datetime.fromisoformat(value["created_at"]),
            customer_id=value.get("customer_id"),
            actor_agent_id=value.get("actor_agent_id"),
            recipient_id=value.get("recipient_id"),
            scopes=tuple((scope[0], scope[1]) for scope in value.get("scopes") or ()),
        )


@dataclass(frozen=True, slots=True)
class Happened:
    """An event recorded in this transaction, as a reaction sees it before the commit."""

    type: str
    conversation_id: int | None
    customer_id: int | None
    actor_agent_id: int | None
    data: dict[str, Any]
    created_at: datetime


Reaction = Callable[[Session, "EventLog", Sequence[Happened]], None]
"""Runs just before a unit of work commits, in its transaction, with the events it recorded
(SLA clocks, automation rules, satisfaction surveys). It may change rows and record events of
its own with `log.add`; those are handed to the reactions in the next round. Raising rolls the
whole unit of work back, so a reaction that must not lose the message catches its own errors."""


def customer_scopes(session: Session, customer_ids: set[int]) -> dict[int, tuple[Scope, ...]]:
    """The distinct (team_id, assignee_id) of each customer's conversations."""
    scopes: dict[int, set[Scope]] = {customer_id: set() for customer_id in customer_ids}
    if customer_ids:
        rows = session.execute(
            select(Conversation.customer_id, Conversation.team_id, Conversation.assignee_id)
            .where(Conversation.customer_id.in_(customer_ids))
            .distinct()
        )
        for customer_id, team_id, assignee_id in rows:
            scopes[customer_id].add((team_id, assignee_id))
    return {customer_id: tuple(sorted(s, key=repr)) for customer_id, s in scopes.items()}


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
        "sla": sla_summary(conversation),
    }


_SLA_METRICS = ("first_response", "next_response", "resolution")


def sla_summary(conversation: object) -> dict[str, Any] | None:
    """The conversation's next running SLA deadline, `{policy, metric, due_at, warn_from,
    paused}`; None without one. Read by attribute name: the router's `ConversationRef` has no
    clocks (they start in a reaction after it)."""
    policy = getattr(conversation, "sla_policy", None)
    state = getattr(conversation, "sla_state", None)
    if not policy or not isinstance(state, dict):
        return None
    if getattr(conversation, "sla_paused_at", None) is not None:
        overdue, remaining = state.get("overdue") or {}, state.get("remaining") or {}
        left = [(0.0, m) for m in _SLA_METRICS if m in overdue]
        left += sorted((float(s), m) for m, s in remaining.items() if m in _SLA_METRICS)
        if not left:
            return None
        return {
            "policy": policy,
            "metric": left[0][1],
            "due_at": overdue.get(left[0][1]),
            "warn_from": None,
            "paused": True,
            "remaining_seconds": left[0][0],
        }
    running = [
        (due, metric)
        for metric in _SLA_METRICS
        if (due := getattr(conversation, f"{metric}_due_at", None)) is not None
    ]
    if not running:
        return None
    due, metric = min(running)
    return {
        "policy": policy,
        "metric": metric,
        "due_at": due.isoformat(),
        "warn_from": (state.get("warn_from") or {}).get(metric),
        "paused": False,
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
    scopes: tuple[Scope, ...] = ()


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

    def data_since(self, checkpoint: int) -> list[dict[str, Any]]:
        """The data of the events recorded since `checkpoint`, to mark them with their cause
        (an automation rule marks its events so that no rule matches them again)."""
        return [pending.row["data"] for pending in self._pending[checkpoint:]]

    def discard_since(self, checkpoint: int) -> None:
        """Forget events of work that was rolled back."""
        del self._pending[checkpoint:]

    def deliver(self, message_id: int) -> None:
        """Queue an outbound message for its channel once this unit of work commits (marks the
        message's `message.created` event; the composition root's listener queues it)."""
        for pending in reversed(self._pending):
            message = pending.row["data"].get("message")
            if (
                pending.row["type"] == "message.created"
                and isinstance(message, dict)
                and message.get("id") == message_id
            ):
                pending.row["data"]["deliver"] = True
                return
        raise ValueError(f"no message.created event for message {message_id} to deliver")

    def _react(self, session: Session) -> None:
        reactions: Sequence[Reaction] = session.info.get(REACTIONS, ())
        seen = 0
        for _ in range(MAX_REACTION_ROUNDS):
            if not reactions or seen == len(self._pending):
                return
            happened = [
                Happened(
                    type=p.row["type"],
                    conversation_id=p.row["conversation_id"],
                    customer_id=p.row["customer_id"],
                    actor_agent_id=p.row["actor_agent_id"],
                    data=p.row["data"],
                    created_at=p.row["created_at"],
                )
                for p in self._pending[seen:]
            ]
            seen = len(self._pending)
            for reaction in reactions:
                reaction(session, self, happened)
        if seen != len(self._pending):
            logger.warning(
                "reactions still recording events after %s rounds; stopped", MAX_REACTION_ROUNDS
            )

    def _write(self, session: Session) -> None:
        # "before_commit" also fires when a savepoint is released; only the outermost commit
        # writes, once.
        if self._written or session.in_nested_transaction() or not self._pending:
            return
        self._react(session)
        self._written = True
        ids = insert_ids(session, Event, [pending.row for pending in self._pending])
        for pending, event_id in zip(self._pending, ids, strict=True):
            pending.id = event_id
        # A customer's event outside a conversation reaches whoever sees one of the customer's
        # conversations: read them now, inside the transaction that made the change.
        about = {
            p.row["customer_id"]
            for p in self._pending
            if p.conversation is None and p.row["customer_id"] is not None
        }
        if about:
            scopes = customer_scopes(session, about)
            for pending in self._pending:
                if pending.conversation is None and pending.row["customer_id"] in scopes:
                    pending.scopes = scopes[pending.row["customer_id"]]

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
                customer_id=pending.row["customer_id"],
                actor_agent_id=pending.row["actor_agent_id"],
                recipient_id=recipient_of(pending.row["type"], pending.row["data"]),
                scopes=pending.scopes,
            )
            for pending in self._pending
        ]
