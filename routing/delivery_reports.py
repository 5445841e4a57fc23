"""Delivery reports (bounces, DSNs, read receipts) the email channel queues: they update the
outbound message they report on and never open a conversation.

A report names the Message-ID of our mail; `Deliverer` kept that id as the message's provider
id (`Message.provider_id`, indexed). Our Message-IDs start with `pk.<message id>.`, so the
message is found by primary key and confirmed by its provider id; other ids are looked up by
the index.

What a report does to the reply (`metadata["report"]`, set by the channel):
- `delivered` (a DSN "delivered") → `delivered`; `read` (an MDN "displayed") → `read`. Status
  only moves forward (sent → delivered → read): a late "delivered" leaves a read reply read. A
  reply that failed without a bounce (an interrupted or timed-out send) did arrive after all.
- `failed` (a bounce, or a DSN that gave up, 4.x.x included) → `failed` with the receiving
  server's words, retryable from the inbox — unless the reply is already delivered or read, or
  a retry is under way (then it is only noted).
- `delayed` and anything else (relayed, deleted unread…) → a note in the metadata only.
Every report is kept in `metadata["delivery_reports"]` by its mail's id, so a redelivered
report changes nothing; each change is a `message.delivery` event the inbox shows live."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.base import Inbound
from routing.events import EventLog, message_summary
from storage.models import Conversation, Message, utcnow

logger = logging.getLogger(__name__)

KIND = "delivery_report"
_OURS = re.compile(r"^pk\.(\d{1,18})\.")
PROGRESS = {"sent": 0, "delivered": 1, "read": 2}
"""How far a sent reply got; a report never moves it back."""


def is_report(inbound: Inbound) -> bool:
    return inbound.metadata.get("kind") == KIND


def settle_delivery_reports(
    session: Session, inbounds: Sequence[Inbound], log: EventLog
) -> list[Inbound]:
    """Apply the delivery reports among `inbounds`; return the other messages, in order.

    A report on mail we cannot find is logged and dropped."""
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
        if message is not None and message.provider_id == provider_id:
            return message
    return session.scalar(
        select(Message)
        .where(Message.provider_id == provider_id, Message.direction == "out")
        .order_by(Message.id.desc())
        .limit(1)
        .with_for_update()
    )


def report_of(metadata: Mapping[str, str]) -> str:
    """What a report says happened; reports queued before kinds existed were failures or
    delays."""
    if metadata.get("report"):
        return metadata["report"]
    return "failed" if metadata.get("permanent") == "true" else "delayed"


def _bounced(reports: Mapping[str, Any]) -> bool:
    return any(
        entry.get("report", "failed" if entry.get("permanent") else "") == "failed"
        for entry in reports.values()
    )


def _apply(session: Session, message: Message, inbound: Inbound, log: EventLog) -> None:
    reports = dict(message.metadata_.get("delivery_reports") or {})
    if inbound.external_id in reports:
        return
    meta = inbound.metadata
    report = report_of(meta)
    diagnostic = meta.get("diagnostic", "").strip()
    status = meta.get("status", "").strip()
    recipient = meta.get("recipient", "").strip()
    bounced_before = _bounced(reports)
    reports[inbound.external_id] = {
        "report": report,
        "status": status,
        "permanent": report == "failed",
        "at": utcnow().isoformat(),
    }
    metadata = {**message.metadata_, "delivery_reports": reports}
    current = message.delivery_status or ""
    if report in PROGRESS:
        if current == "failed" and not bounced_before:
            message.delivery_status, message.delivery_error = report, None
        elif PROGRESS.get(current, len(PROGRESS)) < PROGRESS[report]:
            message.delivery_status = report
    elif report == "failed" and current in ("sent", "failed"):
        detail = diagnostic or "the recipient's server returned the mail"
        message.delivery_status = "failed"
        failure = meta.get("failure", "").strip() or "bounced"  # chat channels name theirs
        message.delivery_error = (
            f"{failure}{f' ({status})' if status else ''}"
            f"{f' for {recipient}' if recipient else ''}: {detail}"
        )[:2000]
    else:  # a delay, a relay, a bounce for a reply that got through or is being retried
        what = {"failed": "bounced", "delayed": "delayed"}.get(report, meta.get("action") or report)
        note = f"{what}{f' ({status})' if status else ''}{f': {diagnostic}' if diagnostic else ''}"
        metadata["delivery_note"] = note[:500]
    message.metadata_ = metadata
    conversation = session.get(Conversation, message.conversation_id)
    log.add("message.delivery", conversation, {"message": message_summary(message)})
