"""Delivery reports through Dovecot, by kind: a DSN "delivered", a read receipt, a delay, a final
4.x.x failure; a reply's status only moves forward, and each change reaches the inbox live."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from storage.config import StorageConfig
from storage.models import Event, Message
from tests.channels.test_email_transport import (
    ADDRESS,
    _delivery,
    _password,  # noqa: F401 - autouse: the mailbox password in the environment
    _reply_and_wait,
    append,
    conversations,
    email_channel,
    email_stack,
    messages,
)
from tests.fixtures.mail import (
    Dovecot,
    SmtpServer,
    dovecot_server,  # noqa: F401 - the `dovecot` fixture
    smtp_recorder,  # noqa: F401 - the `smtp_server` fixture
)
from tests.fixtures.services import unique
from tests.fixtures.stack import Stack, eventually


def _report(report_type: str, part_type: str, fields: str, headers: str = "") -> bytes:
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.example.com>
To: {ADDRESS}
Subject: Delivery Status Notification
Message-ID: <{unique("report")}@mx.example.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type={report_type}; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain; charset=us-ascii

This is an automatically generated delivery status notification.

--BOUNDARY
Content-Type: {part_type}

{fields}
--BOUNDARY
Content-Type: text/rfc822-headers

{headers}
--BOUNDARY--
""".replace("\n", "\r\n").encode()


def dsn(original: str, action: str, status: str, diagnostic: str = "") -> bytes:
    """A DSN (RFC 3464) on one of our replies, as Postfix writes them."""
    fields = f"""Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; maryam@example.com
Action: {action}
Status: {status}
""" + (f"Diagnostic-Code: smtp; {diagnostic}\n" if diagnostic else "")
    return _report(
        "delivery-status",
        "message/delivery-status",
        fields,
        f"Message-ID: <{original}>\nFrom: Pishkhan Support <{ADDRESS}>\nSubject: Re: x\n",
    )


def read_receipt(original: str, disposition: str = "displayed") -> bytes:
    """An MDN (RFC 8098) the customer's client sends when they open our reply."""
    fields = f"""Reporting-UA: mail.example.com; Thunderbird
Final-Recipient: rfc822; maryam@example.com
Original-Message-ID: <{original}>
Disposition: manual-action/MDN-sent-manually; {disposition}
"""
    raw = _report("disposition-notification", "message/disposition-notification", fields)
    return raw.replace(
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>",
        b"From: Maryam <maryam@example.com>",
    ).replace(b"Subject: Delivery Status Notification", b"Subject: Read: Re: x")


@pytest.fixture(name="mailbox")
def own_mailbox(dovecot: Dovecot) -> str:
    """A folder of this test's own in the module's Dovecot."""
    name = unique("box")
    dovecot.create("support", name)
    return name


async def _sent(stack: Stack, dovecot: Dovecot, mailbox: str) -> tuple[int, str]:
    """A customer mail, the agent's reply, sent: the reply's id and its Message-ID."""
    _, message_id = await _reply_and_wait(stack, dovecot, mailbox)
    sent = await _delivery(stack, message_id, "sent")
    return message_id, sent.metadata_["provider_id"]


async def _reports_seen(stack: Stack, message_id: int, count: int) -> Message:
    async def probe() -> Message | None:
        async with stack.sessions() as session:
            message = await session.get(Message, message_id, populate_existing=True)
            reports = (message.metadata_.get("delivery_reports") or {}) if message else {}
            return message if len(reports) >= count else None

    return await eventually(probe, timeout=15)


async def _delivery_events(stack: Stack, message_id: int) -> list[Any]:
    async with stack.sessions() as session:
        rows = await session.scalars(
            select(Event).where(Event.type == "message.delivery").order_by(Event.id)
        )
        return [
            e.data["message"]["delivery_status"]
            for e in rows
            if e.data["message"]["id"] == message_id
        ]


async def test_delivered_then_read_and_a_late_delivered_leaves_it_read(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    async with email_stack(storage_config, [email_channel(dovecot, smtp_server, mailbox)]) as stack:
        message_id, ours = await _sent(stack, dovecot, mailbox)
        await append(dovecot, dsn(ours, "delivered", "2.0.0", "250 2.0.0 Ok: queued"), mailbox)
        delivered = await _delivery(stack, message_id, "delivered")
        assert delivered.delivery_error is None
        await append(dovecot, read_receipt(ours), mailbox)
        await _delivery(stack, message_id, "read")
        # A slow MTA's "delivered" after the customer already read it: read stays read.
        await append(dovecot, dsn(ours, "delivered", "2.0.0"), mailbox)
        late = await _reports_seen(stack, message_id, 3)
        assert late.delivery_status == "read"
        # Reports open no conversation and are no customer messages.
        assert len(await conversations(stack)) == 1
        assert len([m for m in await messages(stack) if m.direction == "in"]) == 1
        # Each step reached the inbox as an event, in order.
        assert (await _delivery_events(stack, message_id))[-3:] == ["delivered", "read", "read"]


async def test_a_delay_is_noted_and_changes_nothing(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    async with email_stack(storage_config, [email_channel(dovecot, smtp_server, mailbox)]) as stack:
        message_id, ours = await _sent(stack, dovecot, mailbox)
        delay = dsn(ours, "delayed", "4.4.1", "421 4.4.1 Connection timed out, will retry")
        await append(dovecot, delay, mailbox)
        await append(dovecot, delay, mailbox)  # the same report twice is one report
        message = await _reports_seen(stack, message_id, 1)
        assert message.delivery_status == "sent"
        assert message.delivery_error is None
        note = message.metadata_["delivery_note"]
        assert note.startswith("delayed (4.4.1)") and "will retry" in note
        assert len(message.metadata_["delivery_reports"]) == 1
        # Then it gets there after all.
        await append(dovecot, dsn(ours, "delivered", "2.0.0"), mailbox)
        await _delivery(stack, message_id, "delivered")


async def test_a_final_4xx_failure_fails_the_reply_with_the_servers_words(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    async with email_stack(storage_config, [email_channel(dovecot, smtp_server, mailbox)]) as stack:
        message_id, ours = await _sent(stack, dovecot, mailbox)
        expired = dsn(ours, "failed", "4.4.7", "421 4.4.7 Message expired, could not connect")
        await append(dovecot, expired, mailbox)
        failed = await _delivery(stack, message_id, "failed")
        assert failed.delivery_error is not None
        assert "4.4.7" in failed.delivery_error and "Message expired" in failed.delivery_error
        assert "maryam@example.com" in failed.delivery_error
        # A read receipt cannot undo a bounce: the failure stands, for the agent to retry.
        await append(dovecot, read_receipt(ours), mailbox)
        after = await _reports_seen(stack, message_id, 2)
        assert after.delivery_status == "failed"


async def test_a_bounce_after_a_read_receipt_is_only_noted(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    async with email_stack(storage_config, [email_channel(dovecot, smtp_server, mailbox)]) as stack:
        message_id, ours = await _sent(stack, dovecot, mailbox)
        await append(dovecot, read_receipt(ours), mailbox)
        await _delivery(stack, message_id, "read")
        await append(dovecot, dsn(ours, "failed", "5.2.2", "552 5.2.2 Mailbox full"), mailbox)
        message = await _reports_seen(stack, message_id, 2)
        assert message.delivery_status == "read"
        assert message.metadata_["delivery_note"] == "bounced (5.2.2): 552 5.2.2 Mailbox full"
