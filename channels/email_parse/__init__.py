"""Turns raw RFC 5322 mail into a `ParsedMail`: decoded text, sanitized HTML, attachments, kind.

Pure functions, no I/O: the email transport (`channels/email.py`) fetches bytes and calls
`parse_mail`. Nothing here raises on bad mail; a broken header or part degrades to a best-effort
value and the rest of the message still comes through. The steps live in the modules beside
this one: charsets, headers, html_text, quotes, mime, recognize, language."""

from __future__ import annotations

import email
import logging

from channels.email_parse.charsets import decode_bytes
from channels.email_parse.headers import (
    decode_header_value,
    message_ids,
    normalize_message_id,
    parse_addresses,
    parse_date,
    raw_header,
    raw_headers,
)
from channels.email_parse.html_text import html_to_text, sanitize_html, tidy_text
from channels.email_parse.language import guess_language
from channels.email_parse.mime import Walker
from channels.email_parse.parsed import POLICY, BounceReport, Kind, MailPart, ParsedMail
from channels.email_parse.quotes import fold_quotes
from channels.email_parse.recognize import dsn_report, is_auto_reply, nonstandard_bounce

__all__ = [
    "BounceReport",
    "Kind",
    "MailPart",
    "ParsedMail",
    "decode_bytes",
    "decode_header_value",
    "fold_quotes",
    "html_to_text",
    "normalize_message_id",
    "parse_mail",
    "sanitize_html",
]

logger = logging.getLogger(__name__)


def parse_mail(raw: bytes, *, max_attachment_bytes: int = 25 * 1024 * 1024) -> ParsedMail:
    """Parse one message. Never raises: malformed input gives a best-effort `ParsedMail`."""
    try:
        return _parse(raw, max_attachment_bytes)
    except Exception:
        logger.exception("mail parse failed; falling back to raw text")
        text = decode_bytes(raw.split(b"\n\n", 1)[-1] if b"\n\n" in raw else raw)
        return ParsedMail(
            message_id=None, in_reply_to=None, references=(), from_name="", from_address="",
            reply_to=None, to=(), cc=(), subject="", date=None, text=text, full_text=text,
            html="", attachments=(), kind="message", bounce=None,
        )  # fmt: skip


def _parse(raw: bytes, limit: int) -> ParsedMail:
    msg = email.message_from_bytes(raw, policy=POLICY)
    senders = parse_addresses(raw_header(msg, "From"))
    from_name, from_address = senders[0] if senders else ("", "")
    if not from_address:
        sender = parse_addresses(raw_header(msg, "Sender"))
        from_name, from_address = sender[0] if sender else (from_name, "")
    if not from_name and not from_address:
        from_name = decode_header_value(raw_header(msg, "From"))
    reply_to = parse_addresses(raw_header(msg, "Reply-To"))
    subject = decode_header_value(raw_header(msg, "Subject"))

    walker = Walker(limit)
    walker.walk(msg)
    collected = walker.out

    html_source = "\n".join(collected.htmls)
    full_text = tidy_text("\n".join(t for t in collected.texts if t.strip()))
    if not full_text and html_source:
        full_text = html_to_text(html_source)
    clean, _history = fold_quotes(full_text)

    kind: Kind = "message"
    bounce: BounceReport | None = None
    found = dsn_report(collected, full_text) or nonstandard_bounce(
        msg, from_address, subject, collected, full_text
    )
    if found:
        kind, bounce = found
    elif is_auto_reply(msg, subject):
        kind = "auto_reply"

    return ParsedMail(
        message_id=normalize_message_id(raw_header(msg, "Message-ID")),
        in_reply_to=normalize_message_id(raw_header(msg, "In-Reply-To")),
        references=message_ids(" ".join(raw_headers(msg, "References"))),
        from_name=from_name,
        from_address=from_address,
        reply_to=reply_to[0][1] if reply_to else None,
        to=tuple(addr for _, addr in parse_addresses(", ".join(raw_headers(msg, "To")))),
        cc=tuple(addr for _, addr in parse_addresses(", ".join(raw_headers(msg, "Cc")))),
        subject=subject,
        date=parse_date(raw_header(msg, "Date")),
        text=clean,
        full_text=full_text,
        html=sanitize_html(html_source),
        attachments=tuple(collected.parts),
        kind=kind,
        bounce=bounce,
        language_hint=guess_language(clean, raw_header(msg, "Content-Language")),
    )
