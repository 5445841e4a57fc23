"""Which conversation a message belongs to: the open one, a recently resolved one, or a new one.

Decided for a batch at once: one lookup of each customer's latest conversations, the decisions
in memory (so two messages of one batch land in the same conversation), then one insert and one
update."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, tuple_
from sqlalchemy.orm import Session

from channels.base import Inbound
from storage.bulk import insert_ids, update_by_id
from storage.models import Conversation

UNRESOLVED = ("open", "pending", "snoozed", "bot")
_TABLE = Conversation.__table__
_SAVED = (
    "status",
    "snoozed_until",
    "resolved_at",
    "assignee_id",
    "last_activity_at",
    "waiting_since",
    "last_inbound_message_id",
)
_LATEST_BY_CHANNEL = (
    select(func.max(Conversation.id))
    .where(
        tuple_(Conversation.customer_id, Conversation.channel).in_(
            bindparam("keys", expanding=True)
        )
    )
    .group_by(Conversation.customer_id, Conversation.channel)
)
_LATEST_BY_THREAD = (
    select(func.max(Conversation.id))
    .where(
        tuple_(Conversation.customer_id, Conversation.channel, Conversation.thread_id).in_(
            bindparam("keys", expanding=True)
        )
    )
    .group_by(Conversation.customer_id, Conversation.channel, Conversation.thread_id)
)
_BY_IDS = select(_TABLE).where(_TABLE.c.id.in_(bindparam("ids", expanding=True)))


@dataclass(eq=False)
class ConversationRef:
    """A conversation's routing state; `id` is 0 until a new one is inserted."""

    id: int
    customer_id: int
    channel: str
    thread_id: str | None
    subject: str
    status: str
    priority: str
    assignee_id: int | None
    team_id: int | None
    last_activity_at: datetime
    waiting_since: datetime | None
    snoozed_until: datetime | None = None
    resolved_at: datetime | None = None
    created_at: datetime | None = None
    metadata_: dict[str, Any] = field(default_factory=dict)
    last_inbound_message_id: int | None = None
    new: bool = False


@dataclass(frozen=True, slots=True)
class Threaded:
    conversation: ConversationRef
    change: str  # "created" | "continued" | "reopened"


def _key(inbound: Inbound, customer_id: int) -> tuple[int, str, str | None]:
    return (customer_id, inbound.channel, inbound.thread_id)


def thread_messages(
    session: Session,
    items: Sequence[tuple[Inbound, int, int | None]],
    *,
    now: datetime,
    reopen_window: timedelta,
) -> list[Threaded]:
    """For each (message, customer id, team for a new conversation): a provider thread id (chat,
    email thread) picks its own conversation; otherwise the customer's unresolved conversation on
    the channel continues. A resolved one reopens when the customer writes within
    `reopen_window`; after that a new conversation starts. Nothing is written here."""
    latest = _latest(session, {_key(inbound, cid) for inbound, cid, _ in items})
    threaded: list[Threaded] = []
    for inbound, customer_id, team_id in items:
        key = _key(inbound, customer_id)
        current = latest.get(key)
        change = "created"
        if current is not None and current.status in UNRESOLVED:
            change = "continued"
            if current.status in ("pending", "snoozed"):
                current.status, current.snoozed_until, change = "open", None, "reopened"
        elif (
            current is not None
            and current.resolved_at is not None
            and now - current.resolved_at <= reopen_window
        ):
            current.status, current.resolved_at, change = "open", None, "reopened"
        if change == "created":
            current = latest[key] = ConversationRef(
                id=0,
                customer_id=customer_id,
                channel=inbound.channel,
                thread_id=inbound.thread_id,
                subject=inbound.subject[:500],
                status="open",
                priority="normal",
                assignee_id=None,
                team_id=team_id,
                last_activity_at=now,
                waiting_since=now,
                created_at=now,
                metadata_=dict(inbound.metadata),
                new=True,
            )
        assert current is not None
        threaded.append(Threaded(current, change))
    return threaded


def _latest(
    session: Session, keys: set[tuple[int, str, str | None]]
) -> dict[tuple[int, str, str | None], ConversationRef]:
    """Each key's most recent conversation (by customer and channel, and thread when given)."""
    known = {key for key in keys if key[0]}
    pairs = {(cid, channel) for cid, channel, thread in known if thread is None}
    triples = {key for key in known if key[2] is not None}
    ids: list[int] = []
    if pairs:
        ids += session.scalars(_LATEST_BY_CHANNEL, {"keys": list(pairs)}).all()
    if triples:
        ids += session.scalars(_LATEST_BY_THREAD, {"keys": list(triples)}).all()
    found: dict[tuple[int, str, str | None], ConversationRef] = {}
    if not ids:
        return found
    for row in session.execute(_BY_IDS, {"ids": ids}).mappings():
        ref = ConversationRef(
            id=row["id"],
            customer_id=row["customer_id"],
            channel=row["channel"],
            thread_id=row["thread_id"],
            subject=row["subject"],
            status=row["status"],
            priority=row["priority"],
            assignee_id=row["assignee_id"],
            team_id=row["team_id"],
            last_activity_at=row["last_activity_at"],
            waiting_since=row["waiting_since"],
            snoozed_until=row["snoozed_until"],
            resolved_at=row["resolved_at"],
            created_at=row["created_at"],
            metadata_=row["metadata"],
            last_inbound_message_id=row["last_inbound_message_id"],
        )
        if (ref.customer_id, ref.channel) in pairs:
            found[(ref.customer_id, ref.channel, None)] = ref
        if ref.thread_id is not None:
            found[(ref.customer_id, ref.channel, ref.thread_id)] = ref
    return found


def create_conversations(session: Session, refs: Sequence[ConversationRef]) -> None:
    """Insert the new conversations among `refs`, setting their ids (their messages need them);
    `save_conversations` writes the rest of their state once the messages are stored."""
    created = list({id(ref): ref for ref in refs if ref.new}.values())
    if not created:
        return
    ids = insert_ids(
        session,
        Conversation,
        [
            {
                "customer_id": r.customer_id,
                "channel": r.channel,
                "thread_id": r.thread_id,
                "subject": r.subject,
                "status": r.status,
                "priority": r.priority,
                "assignee_id": r.assignee_id,
                "team_id": r.team_id,
                "created_at": r.created_at,
                "last_activity_at": r.last_activity_at,
                "waiting_since": r.waiting_since,
                "metadata_": r.metadata_,
            }
            for r in created
        ],
    )
    for ref, conversation_id in zip(created, ids, strict=True):
        ref.id, ref.new = conversation_id, False


def save_conversations(session: Session, refs: Sequence[ConversationRef]) -> None:
    """Write the routing state of `refs` (all inserted by now) in one bulk UPDATE."""
    unique = list({id(ref): ref for ref in refs}.values())
    update_by_id(
        session,
        Conversation,
        [{"id": r.id, **{name: getattr(r, name) for name in _SAVED}} for r in unique],
    )
