"""Composing outbound mail and reading our reply tokens back: pure functions, no I/O.

Every reply we send carries a token, `pk.<message id>.<signature>`, twice: in its Message-ID
(`<pk.42.1f3a…@support.example.com>`, which a customer's client puts in In-Reply-To and
References) and in its Reply-To plus address (`support+pk.42.1f3a…@example.com`, which survives
clients that drop those headers). The signature is an HMAC with the channel's own key, so a
token cannot be forged to slip mail into someone else's conversation."""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from channels.base import Outbound

_TOKEN = re.compile(r"pk\.(\d{1,19})\.([0-9a-f]{12})")
_ID = re.compile(r"<([^<>\s]+)>")


def sign(key: bytes, message_id: int) -> str:
    return hmac.new(key, str(message_id).encode(), hashlib.sha256).hexdigest()[:12]


def make_token(key: bytes, message_id: int) -> str:
    return f"pk.{message_id}.{sign(key, message_id)}"


def read_token(key: bytes, text: str) -> int | None:
    """The outbound message id of the first valid token of ours in `text`, else None."""
    for match in _TOKEN.finditer(text):
        message_id = int(match.group(1))
        if hmac.compare_digest(match.group(2), sign(key, message_id)):
            return message_id
    return None


def bare_id(value: str | None) -> str:
    """A Message-ID without its angle brackets and spaces; "" when there is none."""
    if not value:
        return ""
    match = _ID.search(value)
    return (match.group(1) if match else value.strip().strip("<>")).strip()


def message_ids(value: str | Iterable[str] | None) -> list[str]:
    """The Message-IDs in a References-style header (or a list of them), bare, in order."""
    if not value:
        return []
    if isinstance(value, str):
        found = _ID.findall(value)
        return found or [bare_id(part) for part in value.split() if bare_id(part)]
    return [bare_id(item) for item in value if bare_id(item)]


def plus_address(address: str, token: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local}+{token}@{domain}"


def tokens_in_recipients(headers: Sequence[str]) -> str:
    """The plus-address parts of recipient headers (To, Cc, Delivered-To, X-Original-To)."""
    parts: list[str] = []
    for _, address in getaddresses(list(headers)):
        local = address.partition("@")[0]
        if "+" in local:
            parts.append(local.partition("+")[2])
    return " ".join(parts)


def reply_subject(subject: str) -> str:
    subject = subject.strip() or "(no subject)"
    if re.match(r"^\s*(re|aw|sv|پاسخ)\s*:", subject, re.IGNORECASE):
        return subject
    return f"Re: {subject}"


def text_to_html(text: str) -> str:
    paragraphs = "".join(
        f"<p>{html.escape(block).replace(chr(10), '<br>')}</p>"
        for block in text.split("\n\n")
        if block.strip()
    )
    return f'<!DOCTYPE html><html><body><div dir="auto">{paragraphs}</div></body></html>'


def compose_reply(
    outbound: Outbound,
    *,
    address: str,
    display_name: str,
    token: str,
    sent_at: datetime,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> EmailMessage:
    """The reply as the customer's client will see it: from the support address with the
    agent's name, threaded under the customer's mail, text and HTML alternatives.

    `outbound.thread_id` is the thread's root Message-ID (or None for a conversation that did
    not start by email); `outbound.in_reply_to` the customer's latest mail."""
    local, _, domain = address.partition("@")
    name = f"{outbound.author_name} via {display_name}" if outbound.author_name else display_name
    recipient = outbound.recipient.email or outbound.recipient.external_id
    message = EmailMessage()
    message["From"] = Address(display_name=name, username=local, domain=domain)
    message["To"] = Address(display_name=outbound.recipient.name, addr_spec=recipient)
    message["Reply-To"] = Address(display_name=display_name, addr_spec=plus_address(address, token))
    message["Subject"] = reply_subject(outbound.subject)
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = f"<{token}@{domain}>"
    parent = bare_id(outbound.in_reply_to) if _is_message_id(outbound.in_reply_to) else ""
    root = bare_id(outbound.thread_id) if _is_message_id(outbound.thread_id) else ""
    references = [ref for ref in dict.fromkeys([root, parent]) if ref]
    if parent or root:
        message["In-Reply-To"] = f"<{parent or root}>"
        message["References"] = " ".join(f"<{ref}>" for ref in references)
    # Mail a person wrote: no Auto-Submitted; responders must still not answer with a loop, so
    # say it is not a list and ask auto-responders to stay quiet (RFC 3834, Exchange's header).
    message["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    message.set_content(outbound.text)
    message.add_alternative(text_to_html(outbound.text), subtype="html")
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(
            data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=filename,
            params=_text_charset(maintype, data),
        )
    return message


def _text_charset(maintype: str, data: bytes) -> dict[str, str]:
    """A text file that is UTF-8 says so, or Persian in a .txt or .csv shows garbled in clients
    that assume Latin-1; one in another charset is left unlabelled rather than mislabelled."""
    if maintype != "text":
        return {}
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return {"charset": "utf-8"}


def _is_message_id(value: str | None) -> bool:
    """Our fallback ids (a hash of a mail without Message-ID) are not ids to reply to."""
    return bool(value) and "@" in str(value) and not str(value).startswith("sha256:")
