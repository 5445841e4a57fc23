"""Which conversation a message belongs to: the open one, a recently resolved one, or a new one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.base import Inbound
from storage.models import Conversation

UNRESOLVED = ("open", "pending", "snoozed", "bot")


@dataclass(frozen=True, slots=True)
class Threaded:
    conversation: Conversation
    change: str  # "created" | "continued" | "reopened"


def find_or_open(
    session: Session,
    inbound: Inbound,
    customer_id: int,
    *,
    now: datetime,
    reopen_window: timedelta,
    team_id: int | None,
    new_customer: bool = False,
) -> Threaded:
    """A provider thread id (chat, email thread) picks its own conversation; otherwise the
    customer's unresolved conversation on this channel continues. A resolved one reopens when the
    customer writes within `reopen_window`; after that a new conversation starts.
    A new conversation is added to the session but not flushed."""
    query = select(Conversation).where(
        Conversation.channel == inbound.channel, Conversation.customer_id == customer_id
    )
    if inbound.thread_id is not None:
        query = query.where(Conversation.thread_id == inbound.thread_id)
    latest = (
        None if new_customer else session.scalar(query.order_by(Conversation.id.desc()).limit(1))
    )
    if latest is not None:
        if latest.status in UNRESOLVED:
            if latest.status in ("pending", "snoozed"):
                latest.status = "open"
                latest.snoozed_until = None
                return Threaded(latest, "reopened")
            return Threaded(latest, "continued")
        if latest.resolved_at is not None and now - latest.resolved_at <= reopen_window:
            latest.status = "open"
            latest.resolved_at = None
            return Threaded(latest, "reopened")
    conversation = Conversation(
        customer_id=customer_id,
        channel=inbound.channel,
        thread_id=inbound.thread_id,
        subject=inbound.subject[:500],
        status="open",
        team_id=team_id,
        created_at=now,
        last_activity_at=now,
        waiting_since=now,
        metadata_=dict(inbound.metadata),
    )
    session.add(conversation)
    return Threaded(conversation, "created")
