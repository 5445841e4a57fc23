"""Who wrote: one customer, many channel identities, linked by a known email or phone."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.base import Sender
from channels.contacts import normalize_email, normalize_phone
from storage.models import ContactPoint, Customer, Identity

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Resolved:
    customer: Customer
    created: bool
    linked_by: str | None  # "identity" | "email" | "phone" | None for a new customer


def contact_points(sender: Sender) -> list[tuple[str, str]]:
    points: list[tuple[str, str]] = []
    if sender.email and (email := normalize_email(sender.email)):
        points.append(("email", email))
    if sender.phone and (phone := normalize_phone(sender.phone)):
        points.append(("phone", phone))
    return points


def resolve_customer(session: Session, channel: str, sender: Sender, *, now: datetime) -> Resolved:
    """Find the customer behind `sender` or create one, and remember every new way to reach them.

    A contact point already owned by another customer is left with its owner (merging people is
    an agent's decision, not a guess), and the conflict is logged.
    """
    points = contact_points(sender)
    identity = session.scalar(
        select(Identity).where(
            Identity.channel == channel, Identity.external_id == sender.external_id
        )
    )
    customer: Customer | None = None
    linked_by: str | None = None
    if identity is not None:
        customer = session.get(Customer, identity.customer_id)
        linked_by = "identity"
    known = (
        {
            (point.kind, point.value): point
            for point in (
                session.scalars(
                    select(ContactPoint).where(
                        ContactPoint.value.in_([value for _, value in points])
                    )
                )
            ).all()
            if (point.kind, point.value) in points
        }
        if points
        else {}
    )
    if customer is None:
        for kind, value in points:
            if (point := known.get((kind, value))) is not None:
                customer = session.get(Customer, point.customer_id)
                linked_by = kind
                break
    created = customer is None
    if customer is None:
        customer = Customer(name=sender.name, attributes={}, last_contact_at=now)
        session.add(customer)
        session.flush()
    elif sender.name and not customer.name:
        customer.name = sender.name
    if identity is None:
        session.add(
            Identity(
                customer_id=customer.id,
                channel=channel,
                external_id=sender.external_id,
                name=sender.name,
            )
        )
    for kind, value in points:
        point = known.get((kind, value))
        if point is None:
            session.add(ContactPoint(customer_id=customer.id, kind=kind, value=value))
        elif point.customer_id != customer.id:
            logger.warning(
                "%s %s belongs to customer %s, not %s; not relinked",
                kind,
                value,
                point.customer_id,
                customer.id,
            )
    if customer.last_contact_at != now:
        customer.last_contact_at = now
    return Resolved(customer=customer, created=created, linked_by=linked_by)
