"""Delivery reports (bounces, DSNs) the email channel queues: they update the outbound message
they report on and never open a conversation.

A report names the Message-ID of our mail; `Deliverer` kept that id in the message's
`metadata_["provider_id"]`. Our Message-IDs start with `pk.<message id>.`, so the message is
found by primary key and confirmed by its provider id; other ids fall back to a search of
recent replies."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.base import Inbound
from routing.events import EventLog, message_summary
from storage.models import Conversation, Message, utcnow

logger = logging.getLogger(__name__)

KIND = "delivery_report"
_OURS = re.compile(r"^pk\.(\d{1,18})\.")
SEARCH_DAYS = 30


def is_report(inbound: Inbound) -> bool:
    return inbound.metadata.get("kind") == KIND


def settle_delivery_reports(
    session: Session, inbounds: Sequence[Inbound], log: EventLog
) -> list[Inbound]:
    """Apply the delivery reports among `inbounds`; return the other messages, in order.

    A permanent failure marks the reply failed with the diagnostic (retryable from the inbox
    like any failed reply); a delay is noted on the reply. A report seen twice (a redelivery)
    changes nothing the second time; a report on mail we cannot find is logged and dropped."""
    rest: list[Inbound] = []
    for inbound in inbounds:
        if not is_report(inbound):
            rest.append(inbound)
            continue
        original = inbound.metadata.get("original_message_id", "")
        message = _find_reply(session, original) if original else None
        if message is None:
            logger.info(
                "delivery report %s/%s: no reply of ours with Message-ID %r",
                inbound.channel,
                inbound.external_id,
                original,
            )
            continue
        _apply(session, message, inbound, log)
    return rest


def _find_reply(session: Session, provider_id: str) -> Message | None:
    ours = _OURS.match(provider_id)
    if ours:
        message = session.get(Message, int(ours.group(1)), with_for_update=True)
        if message is not None and message.metadata_.get("provider_id") == provider_id:
            return message
    return session.scalar(
        select(Message)
        .where(
            Message.direction == "out",
            Message.created_at >= utcnow() - timedelta(days=SEARCH_DAYS),
            Message.metadata_["provider_id"].as_string() == provider_id,
        )
        .order_by(Message.id.desc())
        .limit(1)
        .with_for_update()
    )


def _apply(session: Session, message: Message, inbound: Inbound, log: EventLog) -> None:
    reports = dict(message.metadata_.get("delivery_reports") or {})
    if inbound.external_id in reports:
        return
    meta = inbound.metadata
    diagnostic = meta.get("diagnostic", "").strip()
    status = meta.get("status", "").strip()
    recipient = meta.get("recipient", "").strip()
    permanent = meta.get("permanent") == "true"
    reports[inbound.external_id] = {"status": status, "permanent": permanent}
    message.metadata_ = {**message.metadata_, "delivery_reports": reports}
    if permanent:
        detail = diagnostic or "the recipient's server returned the mail"
        message.delivery_status = "failed"
        message.delivery_error = (
            f"bounced{f' ({status})' if status else ''}"
            f"{f' for {recipient}' if recipient else ''}: {detail}"
        )[:2000]
    else:
        message.metadata_ = {
            **message.metadata_,
            "delivery_note": f"delayed{f' ({status})' if status else ''}: {diagnostic}"[:500],
        }
    conversation = session.get(Conversation, message.conversation_id)
    log.add("message.delivery", conversation, {"message": message_summary(message)})
