"""Who wrote: one customer, many channel identities, linked by a known email or phone.

Resolved for a whole batch of messages at once: three lookups and at most three inserts however
many messages arrive together."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, select, tuple_
from sqlalchemy.orm import Session

from channels.base import Inbound, Sender
from channels.contacts import normalize_email, normalize_phone
from storage.bulk import insert_ids, insert_rows, update_by_id
from storage.models import ContactPoint, Customer, Identity

logger = logging.getLogger(__name__)

_IDENTITIES = select(Identity.channel, Identity.external_id, Identity.customer_id).where(
    tuple_(Identity.channel, Identity.external_id).in_(bindparam("keys", expanding=True))
)
_POINTS = select(ContactPoint.kind, ContactPoint.value, ContactPoint.customer_id).where(
    ContactPoint.value.in_(bindparam("values", expanding=True))
)
_CUSTOMERS = select(Customer.id, Customer.name, Customer.owner_id).where(
    Customer.id.in_(bindparam("ids", expanding=True))
)


@dataclass(eq=False)
class CustomerRef:
    """A customer as the router needs them; `id` is 0 until a new customer is inserted."""

    id: int
    name: str
    owner_id: int | None
    new: bool = False
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Resolved:
    customer: CustomerRef
    created: bool  # this message made the customer
    linked_by: str | None  # "identity" | "email" | "phone"; None when created


def contact_points(sender: Sender) -> list[tuple[str, str]]:
    points: list[tuple[str, str]] = []
    if sender.email and (email := normalize_email(sender.email)):
        points.append(("email", email))
    if sender.phone and (phone := normalize_phone(sender.phone)):
        points.append(("phone", phone))
    return points


def resolve_customers(
    session: Session, inbounds: Sequence[Inbound], *, now: datetime
) -> list[Resolved]:
    """The customer behind each message's sender, created when nobody matches, with every new
    way to reach them remembered. Messages are taken in order, so two senders in one batch who
    share an email become one customer just as they would one after the other.

    A contact point already owned by another customer stays with its owner (merging people is
    an agent's decision, not a guess); the conflict is logged."""
    points_of = [contact_points(i.sender) for i in inbounds]
    identities, points = _lookup(session, inbounds, points_of)
    new_identities: list[tuple[CustomerRef, Inbound]] = []
    new_points: list[tuple[CustomerRef, str, str]] = []
    resolved: list[Resolved] = []
    for inbound, sender_points in zip(inbounds, points_of, strict=True):
        key = (inbound.channel, inbound.sender.external_id)
        ref, linked_by = identities.get(key), "identity"
        if ref is None:
            linked_by = ""
            for kind, value in sender_points:
                if (ref := points.get((kind, value))) is not None:
                    linked_by = kind
                    break
        created = ref is None
        if ref is None:
            ref = CustomerRef(id=0, name=inbound.sender.name, owner_id=None, new=True)
        elif inbound.sender.name and not ref.name:
            ref.name = inbound.sender.name
        if key not in identities:
            identities[key] = ref
            new_identities.append((ref, inbound))
        for kind, value in sender_points:
            owner = points.get((kind, value))
            if owner is None:
                points[(kind, value)] = ref
                new_points.append((ref, kind, value))
            elif owner is not ref:
                logger.warning("%s %s belongs to another customer; not relinked", kind, value)
        resolved.append(Resolved(ref, created, None if created else linked_by))
    customers = list({id(r.customer): r.customer for r in resolved}.values())
    _write(session, customers, new_identities, new_points, now)
    return resolved


def _lookup(
    session: Session, inbounds: Sequence[Inbound], points_of: list[list[tuple[str, str]]]
) -> tuple[dict[tuple[str, str], CustomerRef], dict[tuple[str, str], CustomerRef]]:
    keys = list({(i.channel, i.sender.external_id) for i in inbounds})
    identity_rows = session.execute(_IDENTITIES, {"keys": keys}).all()
    values = list({value for sender_points in points_of for _, value in sender_points})
    point_rows = session.execute(_POINTS, {"values": values}).all() if values else []
    ids = {row.customer_id for row in identity_rows} | {row.customer_id for row in point_rows}
    refs = {
        row.id: CustomerRef(id=row.id, name=row.name, owner_id=row.owner_id)
        for row in (session.execute(_CUSTOMERS, {"ids": list(ids)}) if ids else [])
    }
    identities = {(r.channel, r.external_id): refs[r.customer_id] for r in identity_rows}
    points = {(r.kind, r.value): refs[r.customer_id] for r in point_rows}
    return identities, points


def _write(
    session: Session,
    customers: list[CustomerRef],
    new_identities: list[tuple[CustomerRef, Inbound]],
    new_points: list[tuple[CustomerRef, str, str]],
    now: datetime,
) -> None:
    created = [ref for ref in customers if ref.new]
    if created:
        ids = insert_ids(
            session,
            Customer,
            [
                {"name": ref.name, "attributes": {}, "created_at": now, "last_contact_at": now}
                for ref in created
            ],
        )
        for ref, customer_id in zip(created, ids, strict=True):
            ref.id = customer_id
    existing = [ref for ref in customers if not ref.new]
    if existing:
        update_by_id(
            session,
            Customer,
            [{"id": ref.id, "name": ref.name, "last_contact_at": now} for ref in existing],
        )
    if new_identities:
        insert_rows(
            session,
            Identity,
            [
                {
                    "customer_id": ref.id,
                    "channel": i.channel,
                    "external_id": i.sender.external_id,
                    "name": i.sender.name,
                    "created_at": now,
                }
                for ref, i in new_identities
            ],
        )
    if new_points:
        insert_rows(
            session,
            ContactPoint,
            [
                {"customer_id": ref.id, "kind": kind, "value": value}
                for ref, kind, value in new_points
            ],
        )
