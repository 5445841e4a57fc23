"""The customer's 360° view: every channel identity, every past conversation, who owns them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Agent,
    ContactPoint,
    Conversation,
    Customer,
    CustomerLabel,
    Identity,
    Label,
    Message,
)


async def customer_profile(
    session: AsyncSession, customer_id: int, *, conversations: int = 50
) -> dict[str, Any] | None:
    """What an agent needs beside a conversation so the customer never repeats themselves."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        return None
    owner = await session.get(Agent, customer.owner_id) if customer.owner_id else None
    points = (
        await session.scalars(
            select(ContactPoint)
            .where(ContactPoint.customer_id == customer_id)
            .order_by(ContactPoint.id)
        )
    ).all()
    identities = (
        await session.scalars(
            select(Identity).where(Identity.customer_id == customer_id).order_by(Identity.id)
        )
    ).all()
    labels = (
        await session.scalars(
            select(Label.name)
            .join(CustomerLabel, CustomerLabel.label_id == Label.id)
            .where(CustomerLabel.customer_id == customer_id)
            .order_by(Label.name)
        )
    ).all()
    counts = (
        select(Message.conversation_id, func.count().label("messages"))
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.customer_id == customer_id, Message.private.is_(False))
        .group_by(Message.conversation_id)
        .subquery()
    )
    past = (
        await session.execute(
            select(Conversation, func.coalesce(counts.c.messages, 0))
            .outerjoin(counts, counts.c.conversation_id == Conversation.id)
            .where(Conversation.customer_id == customer_id)
            .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
            .limit(conversations)
        )
    ).all()
    total = await session.scalar(
        select(func.count())
        .select_from(Conversation)
        .where(Conversation.customer_id == customer_id)
    )
    conversation_channels = (
        await session.scalars(
            select(Conversation.channel).where(Conversation.customer_id == customer_id).distinct()
        )
    ).all()
    owner_ref = {"id": owner.id, "name": owner.name} if owner else None
    return {
        "id": customer.id,
        "name": customer.name,
        "owner": owner_ref,
        "contact_points": [{"kind": p.kind, "value": p.value} for p in points],
        "identities": [
            {"channel": i.channel, "external_id": i.external_id, "name": i.name} for i in identities
        ],
        "labels": list(labels),
        "attributes": customer.attributes,
        "channels": sorted({*(i.channel for i in identities), *conversation_channels}),
        "first_seen_at": customer.created_at.isoformat(),
        "last_contact_at": customer.last_contact_at.isoformat()
        if customer.last_contact_at
        else None,
        "conversation_count": total or 0,
        "conversations": [
            {
                "id": c.id,
                "channel": c.channel,
                "subject": c.subject,
                "status": c.status,
                "assignee_id": c.assignee_id,
                "messages": count,
                "created_at": c.created_at.isoformat(),
                "last_activity_at": c.last_activity_at.isoformat(),
            }
            for c, count in past
        ],
        # Earlier names of the same facts, kept for clients written before the inbox contract.
        "emails": [p.value for p in points if p.kind == "email"],
        "phones": [p.value for p in points if p.kind == "phone"],
        "channels_used": sorted({i.channel for i in identities}),
        "responsible_agent": owner_ref,
    }
