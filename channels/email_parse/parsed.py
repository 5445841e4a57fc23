"""What a parsed mail is: the `ParsedMail` `parse_mail` returns, its parts and reports."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Kind = Literal["message", "auto_reply", "bounce", "delivery_report"]

# compat32 keeps headers as raw strings: every header is decoded leniently here, and skipping
# the default policy's structured header parsing makes a parse about three times faster.
POLICY = email.policy.compat32


@dataclass(frozen=True, slots=True)
class MailPart:
    """An attachment or inline image.

    `content_id` is stored without angle brackets, as a `cid:` URL in the HTML names it.
    `data` is None when the part is larger than the limit; `note` then says so.
    """

    filename: str
    content_type: str
    size: int
    data: bytes | None
    content_id: str | None
    inline: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class BounceReport:
    """What a delivery report says about one of our messages.

    Filled for `kind == "bounce"` (a failure) and also for `kind == "delivery_report"` (a DSN
    "delivered"/"relayed"/"delayed", an MDN read receipt), where `permanent` is False and
    `diagnostic` holds the action or disposition ("delivered", "displayed"). `action` is what
    the report says happened: a DSN's `failed`, `delayed`, `delivered`, `relayed`, `expanded`,
    or an MDN's disposition (`displayed`, `deleted`, `dispatched`, `processed`).
    """

    original_message_id: str | None
    recipient: str | None
    status: str | None
    diagnostic: str
    permanent: bool
    action: str = ""


@dataclass(frozen=True, slots=True)
class ParsedMail:
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    from_name: str
    from_address: str
    reply_to: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    date: datetime | None
    text: str
    full_text: str
    html: str
    attachments: tuple[MailPart, ...]
    kind: Kind
    bounce: BounceReport | None
    language_hint: str | None = None
