"""Recognizing mail that must open no conversation: bounces, delivery reports, auto-replies."""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesHeaderParser

from channels.email_parse.charsets import decode_bytes
from channels.email_parse.headers import (
    decode_header_value,
    normalize_message_id,
    parse_addresses,
    raw_header,
)
from channels.email_parse.mime import Collected, content_type_of, payload_bytes, safely
from channels.email_parse.parsed import POLICY, BounceReport, Kind

_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BOUNCE_SENDER = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification \(failure\)|delivery failure|"
    r"mail delivery failed|failure notice|returned mail|delivery has failed|"
    r"could not be delivered|non[- ]?delivery|delivery problem|"
    r"تحویل\s*داده\s*نشد|ارسال\s*نشد|عدم\s*تحویل",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(r"delay|warning: message|still being retried", re.IGNORECASE)
_BODY_MESSAGE_ID = re.compile(r"^\s*Message-ID\s*:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_PERMANENT_WORDS = re.compile(
    r"user unknown|does not exist|no such user|unknown user|mailbox unavailable|"
    r"address rejected|permanent|invalid recipient|not found|mailbox not found|"
    r"recipient address rejected|doesn't exist|disabled",
    re.IGNORECASE,
)


def _items(msg: Message) -> list[tuple[str, str]]:
    try:
        return [(str(k), str(v)) for k, v in msg.raw_items()]  # type: ignore[attr-defined]
    except Exception:
        return []


def _report_fields(report: Message) -> list[dict[str, str]]:
    """The field blocks of a message/delivery-status or disposition-notification part."""
    payload = safely(report.get_payload, None)
    blocks: list[dict[str, str]] = []
    if isinstance(payload, list):
        for block in payload:
            if isinstance(block, Message):
                fields = {k.lower(): decode_header_value(v) for k, v in _items(block)}
                blocks.append(fields)
        if blocks:
            return blocks
    # unparsed (or base64-encoded) report text: blocks separated by blank lines
    text = decode_bytes(payload_bytes(report))
    for chunk in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        parsed = BytesHeaderParser(policy=POLICY).parsebytes(
            chunk.strip().encode("utf-8", errors="replace")
        )
        fields = {k.lower(): decode_header_value(str(v)) for k, v in parsed.raw_items()}  # type: ignore[attr-defined]
        if fields:
            blocks.append(fields)
    return blocks


def _typed_address(value: str | None) -> str | None:
    """`rfc822; user@example.com` → `user@example.com`."""
    if not value:
        return None
    address = value.split(";", 1)[-1].strip().strip("<>").strip()
    return address.lower() or None


def _original_id(collected: Collected, body: str) -> str | None:
    for returned in collected.returned:
        found = normalize_message_id(raw_header(returned, "Message-ID"))
        if found:
            return found
    match = _BODY_MESSAGE_ID.search(body)
    return match.group(1) if match else None


def dsn_report(collected: Collected, body: str) -> tuple[Kind, BounceReport] | None:
    for report in collected.reports:
        ctype = content_type_of(report)
        blocks = _report_fields(report)
        if "disposition" in ctype:
            fields: dict[str, str] = {}
            for block in blocks:
                fields.update(block)
            disposition = fields.get("disposition", "")
            original = normalize_message_id(fields.get("original-message-id")) or _original_id(
                collected, body
            )
            shown = disposition.split(";")[-1].strip() or disposition
            return "delivery_report", BounceReport(
                original_message_id=original,
                recipient=_typed_address(
                    fields.get("final-recipient") or fields.get("original-recipient")
                ),
                status=None,
                diagnostic=shown,
                permanent=False,
                action=(shown.split("/")[0].split() or [""])[0].lower(),
            )
        recipients = [b for b in blocks if "action" in b or "final-recipient" in b] or blocks[1:]
        if not recipients:
            continue
        failed = [b for b in recipients if b.get("action", "").lower().startswith("failed")]
        chosen = failed[0] if failed else recipients[0]
        action = chosen.get("action", "").lower().split()[0] if chosen.get("action") else ""
        status_match = _STATUS_RE.search(chosen.get("status", ""))
        status = status_match.group(0) if status_match else None
        diagnostic = chosen.get("diagnostic-code", "")
        if ";" in diagnostic:
            diagnostic = diagnostic.split(";", 1)[1].strip()
        if not action and status:  # no Action field: the status class says what happened
            action = {"5": "failed", "4": "delayed", "2": "delivered"}.get(status[0], "")
        kind: Kind = "bounce" if action == "failed" else "delivery_report"
        return kind, BounceReport(
            original_message_id=_original_id(collected, body),
            recipient=_typed_address(
                chosen.get("final-recipient") or chosen.get("original-recipient")
            ),
            status=status,
            diagnostic=diagnostic or action or "",
            # "failed" is final whatever the status class: a 4.x.x the server gave up retrying
            # (4.4.7 "message expired") fails the mail as surely as a 5.x.x.
            permanent=kind == "bounce",
            action=action,
        )
    return None


def _bounce_diagnostic(body: str, recipient: str | None) -> str:
    """The server's words in a free-form bounce: the status line, else what follows the address."""
    lines = [line.strip() for line in body.split("\n")]
    for line in lines:
        if _STATUS_RE.search(line) or re.search(r"\b[45]\d\d[\s-]", line):
            return line
    if recipient:
        for i, line in enumerate(lines):
            if recipient in line.lower():
                after = line.lower().split(recipient, 1)[1].strip(" >:")
                if after:
                    return line
                following = next((x for x in lines[i + 1 :] if x), "")
                return following
    return next((line for line in lines if _PERMANENT_WORDS.search(line)), "")


def nonstandard_bounce(
    msg: Message, from_address: str, subject: str, collected: Collected, body: str
) -> tuple[Kind, BounceReport] | None:
    return_path = (raw_header(msg, "Return-Path") or "").strip()
    from_daemon = bool(_BOUNCE_SENDER.match(from_address)) or "mail delivery" in (
        decode_header_value(raw_header(msg, "From")).lower()
    )
    bounce_subject = bool(_BOUNCE_SUBJECT.search(subject))
    null_sender = return_path in {"<>", "<<>>"}
    if not (from_daemon and (bounce_subject or null_sender)) and not (
        bounce_subject and (null_sender or raw_header(msg, "X-Failed-Recipients"))
    ):
        return None
    delay = bool(_DELAY_SUBJECT.search(subject)) and not bounce_subject
    status_match = _STATUS_RE.search(body)
    status = status_match.group(0) if status_match else None
    failed = raw_header(msg, "X-Failed-Recipients")
    recipient = parse_addresses(failed)[0][1] if failed and parse_addresses(failed) else None
    if recipient is None:
        match = re.search(r"<([^<>\s@]+@[^<>\s]+)>\s*:", body) or re.search(
            r"^\s*([^\s@<>:]+@[^\s<>:]+)\s*$", body, re.MULTILINE
        )
        recipient = match.group(1).lower() if match else None
    diagnostic = _bounce_diagnostic(body, recipient)
    if status:
        permanent = status.startswith("5")
    else:
        permanent = bool(_PERMANENT_WORDS.search(body)) or bool(re.search(r"\b5\d\d[\s-]", body))
    report = BounceReport(
        original_message_id=_original_id(collected, body),
        recipient=recipient,
        status=status,
        diagnostic=diagnostic or subject,
        permanent=permanent and not delay,
        action="delayed" if delay else "failed",
    )
    return ("delivery_report" if delay else "bounce"), report


_VACATION_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[\s-]?reply|auto:|autoreply|out of (?:the )?office|vacation|"
    r"away from|abwesenheit|réponse automatique|respuesta automática|"
    r"پاسخ\s*(?:\u200c)?\s*خودکار|خارج از دفتر|در مرخصی|رد تلقائي|الرد الآلي)",
    re.IGNORECASE,
)


_AUTO_REPLY_HEADERS = (
    "X-Autoreply",
    "X-Autorespond",
    "X-Autoresponse",
    "X-Autogenerated",
    "X-AutoReply-From",
    "X-Mail-Autoreply",
    "X-FC-MachineGenerated",
)


def is_auto_reply(msg: Message, subject: str) -> bool:
    auto_submitted = (raw_header(msg, "Auto-Submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    for name in _AUTO_REPLY_HEADERS:
        value = (raw_header(msg, name) or "").strip().lower()
        if value and value not in {"no", "false", "0"}:
            return True
    precedence = (raw_header(msg, "Precedence") or "").strip().lower()
    if precedence in {"bulk", "junk", "auto_reply", "auto-reply"}:
        return True
    if _VACATION_SUBJECT.search(subject):
        weak = (
            raw_header(msg, "X-Auto-Response-Suppress")
            or (raw_header(msg, "Return-Path") or "").strip() in {"<>", "<<>>"}
            or precedence == "list"
            or "vacation" in (raw_header(msg, "X-Mailer") or "").lower()
        )
        return bool(weak)
    return False
