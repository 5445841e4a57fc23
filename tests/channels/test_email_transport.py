"""The email channel against real servers: Dovecot (IMAP) in, aiosmtpd out, the whole stack."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import func, select

from storage.config import StorageConfig
from storage.models import Attachment, Conversation, Message
from tests.fixtures.mail import (
    PASSWORD,
    Dovecot,
    SmtpServer,
    customer_mail,
    dovecot_server,  # noqa: F401 - the `dovecot` fixture
    smtp_recorder,  # noqa: F401 - the `smtp_server` fixture
)
from tests.fixtures.services import unique
from tests.fixtures.stack import Stack, eventually, running_stack

ENV = "PISHKHAN_TEST_MAIL_PASSWORD"
ADDRESS = "support@pishkhan.test"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, PASSWORD)


@pytest.fixture
def mailbox(dovecot: Dovecot) -> str:
    """A folder of this test's own, so tests sharing the module's Dovecot never meet."""
    name = unique("box")
    for user in ("support", "sales"):
        dovecot.create(user, name)
    return name


def email_channel(
    dovecot: Dovecot,
    smtp: SmtpServer,
    mailbox: str,
    *,
    name: str = "support",
    user: str = "support",
    address: str = ADDRESS,
    team: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "type": "email",
        "name": name,
        "address": address,
        "display_name": "Pishkhan Support",
        "imap_host": "127.0.0.1",
        "imap_port": dovecot.port,
        "imap_security": "none",
        "imap_username": user,
        "imap_password": f"${{{ENV}}}",
        "mailbox": mailbox,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_security": "none",
        "timeout_seconds": 5,
        **({"team": team} if team else {}),
        **extra,
    }


@asynccontextmanager
async def email_stack(
    storage: StorageConfig, channels: list[dict[str, Any]], **extra: Any
) -> AsyncIterator[Stack]:
    async with running_stack(storage, {"channels": channels, **extra}) as stack:
        yield stack


async def conversations(stack: Stack) -> list[Conversation]:
    async with stack.sessions() as session:
        return list((await session.scalars(select(Conversation).order_by(Conversation.id))).all())


async def messages(stack: Stack, conversation_id: int | None = None) -> list[Message]:
    query = select(Message).order_by(Message.id)
    if conversation_id is not None:
        query = query.where(Message.conversation_id == conversation_id)
    async with stack.sessions() as session:
        return list((await session.scalars(query)).all())


async def customer_messages(stack: Stack, count: int, timeout: float = 10.0) -> list[Message]:  # noqa: ASYNC109
    async def probe() -> list[Message] | None:
        found = [m for m in await messages(stack) if m.direction == "in"]
        return found if len(found) >= count else None

    return await eventually(probe, timeout=timeout)


async def append(dovecot: Dovecot, raw: bytes, mailbox: str, user: str = "support") -> int:
    return await asyncio.to_thread(dovecot.append, user, raw, mailbox)


def channel_status(stack: Stack, name: str = "support") -> dict[str, Any]:
    assert stack.runtime.services is not None
    return dict(stack.runtime.services.channels[name].status())


async def test_round_trip_threads_in_both_directions(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    channel = email_channel(dovecot, smtp_server, mailbox)
    await append(dovecot, customer_mail(message_id="<first@mail.example.com>"), mailbox)
    async with email_stack(storage_config, [channel]) as stack:
        agent = await stack.add_agent("sara@pishkhan.test")
        [first] = await customer_messages(stack, 1)
        assert first.external_id == "first@mail.example.com"
        assert first.subject == "سفارش ۱۲۳"
        assert "سفارشم هنوز نرسیده است" in first.text
        [conversation] = await conversations(stack)
        assert conversation.thread_id == "first@mail.example.com"
        await eventually(lambda: _async_seen(dovecot, mailbox))  # \Seen after it was queued

        status, reply = await agent.send(
            "POST", f"/api/v1/conversations/{conversation.id}/messages", {"text": "ارسال شد."}
        )
        assert status == 201, reply
        [received] = await smtp_server.wait_for(1)
        mail = received.message
        assert received.rcpt_tos == ["maryam@example.com"]
        assert mail["To"].addresses[0].addr_spec == "maryam@example.com"
        assert mail["From"].addresses[0].addr_spec == ADDRESS
        assert mail["From"].addresses[0].display_name == "sara via Pishkhan Support"
        assert mail["Subject"] == "Re: سفارش ۱۲۳"
        assert mail["In-Reply-To"] == "<first@mail.example.com>"
        assert mail["References"] == "<first@mail.example.com>"
        ours = mail["Message-ID"]
        assert ours.startswith("<pk.") and ours.endswith("@pishkhan.test>")
        reply_to = mail["Reply-To"].addresses[0].addr_spec
        assert reply_to.startswith("support+pk.") and reply_to.endswith("@pishkhan.test")
        assert "Auto-Submitted" not in mail
        kinds = [part.get_content_type() for part in mail.walk()]
        assert kinds == ["multipart/alternative", "text/plain", "text/html"]
        assert mail.get_body(("plain",)).get_content().strip() == "ارسال شد."  # type: ignore[union-attr]

        async def sent() -> Message | None:
            out = [m for m in await messages(stack) if m.direction == "out"]
            return out[0] if out and out[0].delivery_status == "sent" else None

        outbound = await eventually(sent)
        assert outbound.metadata_["provider_id"] == ours.strip("<>")

        # The customer answers with full headers, with In-Reply-To only, and with none at all
        # (a client that drops them) but to the Reply-To plus address.
        await append(
            dovecot,
            customer_mail(
                message_id="<second@mail.example.com>",
                subject="Re: سفارش ۱۲۳",
                in_reply_to=ours,
                references=f"<first@mail.example.com> {ours}",
            ),
            mailbox,
        )
        await append(
            dovecot,
            customer_mail(
                message_id="<third@mail.example.com>", subject="Re: سفارش", in_reply_to=ours
            ),
            mailbox,
        )
        await append(
            dovecot,
            customer_mail(message_id="<fourth@mail.example.com>", subject="hi", to=reply_to),
            mailbox,
        )
        inbound = await customer_messages(stack, 4)
        assert {m.conversation_id for m in inbound} == {conversation.id}
        assert len(await conversations(stack)) == 1

        # A forged token (right shape, wrong signature) does not thread into that conversation.
        forged = ours.split(".")[0] + "." + ours.split(".")[1] + ".000000000000@pishkhan.test>"
        await append(
            dovecot,
            customer_mail(message_id="<fifth@mail.example.com>", in_reply_to=forged),
            mailbox,
        )
        inbound = await customer_messages(stack, 5)
        assert inbound[-1].conversation_id != conversation.id


def _seen(dovecot: Dovecot, mailbox: str) -> bool:
    flags = dovecot.flags("support", mailbox)
    return bool(flags) and all("\\Seen" in value for value in flags.values())


async def _async_seen(dovecot: Dovecot, mailbox: str) -> bool:
    return await asyncio.to_thread(_seen, dovecot, mailbox)


async def test_restarts_miss_nothing_and_duplicate_nothing(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    channel = email_channel(dovecot, smtp_server, mailbox)
    await append(dovecot, customer_mail(message_id="<r1@example.com>"), mailbox)
    async with email_stack(storage_config, [channel]) as stack:
        await customer_messages(stack, 1)
        await eventually(lambda: _async_seen(dovecot, mailbox))
    # Mail that lands while the adapter is down, one without a Message-ID.
    await append(dovecot, customer_mail(message_id="<r2@example.com>", body="دوم"), mailbox)
    await append(dovecot, customer_mail(body="بدون شناسه"), mailbox)
    async with email_stack(storage_config, [channel]) as stack:
        found = await customer_messages(stack, 3)
        ids = [m.external_id for m in found]
        assert ids[:2] == ["r1@example.com", "r2@example.com"]
        assert ids[2] is not None and ids[2].startswith("sha256:")
        # A crash between queueing and remembering: the cursor is behind, and the mailbox's
        # UIDVALIDITY looks changed. Both make the adapter fetch everything again.
        assert stack.runtime.services is not None
        from storage.cursors import SqlCursorStore

        cursors = SqlCursorStore(stack.sessions)

        async def remembered() -> bool:
            value = await cursors.get("support", f"uid:{mailbox}")
            return value is not None and value.endswith(":3")

        await eventually(remembered)
    await cursors_set(storage_config, f"uid:{mailbox}", "1:0")
    await append(dovecot, customer_mail(message_id="<r4@example.com>"), mailbox)
    async with email_stack(storage_config, [channel]) as stack:
        found = await customer_messages(stack, 4)
        await asyncio.sleep(1.0)  # time for any duplicate to show
        found = [m for m in await messages(stack) if m.direction == "in"]
        assert len(found) == 4
        assert len({m.external_id for m in found}) == 4


async def cursors_set(storage: StorageConfig, key: str, value: str) -> None:
    from storage.cursors import SqlCursorStore
    from storage.db import create_engine, session_factory

    engine = create_engine(storage)
    try:
        await SqlCursorStore(session_factory(engine)).set("support", key, value)
    finally:
        await engine.dispose()


async def test_reconnects_when_the_connection_drops_mid_idle(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    channel = email_channel(dovecot, smtp_server, mailbox)
    async with email_stack(storage_config, [channel]) as stack:

        async def idle() -> bool:
            return bool(channel_status(stack)["idle"])

        await eventually(idle)
        assert await asyncio.to_thread(dovecot.kill_imap_processes) >= 1
        await append(dovecot, customer_mail(message_id="<after-drop@example.com>"), mailbox)
        [message] = await customer_messages(stack, 1, timeout=15)
        assert message.external_id == "after-drop@example.com"
        assert "lost" in channel_status(stack)["last_error"] or channel_status(stack)["connected"]

        # The whole server restarts: still reconnects.
        await eventually(idle, timeout=10)
        await asyncio.to_thread(dovecot.restart)
        await append(dovecot, customer_mail(message_id="<after-restart@example.com>"), mailbox)
        found = await customer_messages(stack, 2, timeout=20)
        assert found[-1].external_id == "after-restart@example.com"
        status = channel_status(stack)
        assert status["connected"] and status["last_message_at"]


async def _reply_and_wait(stack: Stack, dovecot: Dovecot, mailbox: str) -> tuple[Any, int]:
    await append(dovecot, customer_mail(message_id=f"<{unique('m')}@example.com>"), mailbox)
    agent = await stack.add_agent(f"{unique('a')}@pishkhan.test")
    [first] = await customer_messages(stack, 1)
    status, reply = await agent.send(
        "POST", f"/api/v1/conversations/{first.conversation_id}/messages", {"text": "پاسخ"}
    )
    assert status == 201, reply
    return agent, reply["id"]


async def _delivery(stack: Stack, message_id: int, *statuses: str) -> Message:
    async def probe() -> Message | None:
        async with stack.sessions() as session:
            message = await session.get(Message, message_id)
            return message if message and message.delivery_status in statuses else None

    return await eventually(probe, timeout=15)


async def test_a_4xx_is_retried_then_sent(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    smtp_server.answers = ["451 4.3.0 Mailbox busy, try again later"]
    async with email_stack(storage_config, [email_channel(dovecot, smtp_server, mailbox)]) as stack:
        _, message_id = await _reply_and_wait(stack, dovecot, mailbox)
        message = await _delivery(stack, message_id, "sent")
        assert message.delivery_attempts == 2
        assert len(await smtp_server.wait_for(1)) == 1


async def test_a_5xx_fails_with_the_servers_words_and_retries_from_the_api(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    smtp_server.answers = ["550 5.1.1 No such user here"]
    async with email_stack(storage_config, [email_channel(dovecot, smtp_server, mailbox)]) as stack:
        agent, message_id = await _reply_and_wait(stack, dovecot, mailbox)
        message = await _delivery(stack, message_id, "failed")
        assert message.delivery_error is not None
        assert "550" in message.delivery_error and "No such user here" in message.delivery_error
        assert message.delivery_attempts == 1
        status, _ = await agent.send("POST", f"/api/v1/messages/{message_id}/retry")
        assert status == 200
        await _delivery(stack, message_id, "sent")
        assert len(await smtp_server.wait_for(1)) == 1


def _bounce(original: str) -> bytes:
    """A Postfix-style DSN for a reply of ours."""
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.example.com>
To: {ADDRESS}
Subject: Undelivered Mail Returned to Sender
Message-ID: <{unique("bounce")}@mx.example.com>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.com. Your message could not be delivered.

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; maryam@example.com
Original-Recipient: rfc822;maryam@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <maryam@example.com>: Recipient address rejected

--BOUNDARY
Content-Type: text/rfc822-headers

Message-ID: <{original}>
From: Pishkhan Support <{ADDRESS}>
Subject: Re: x

--BOUNDARY--
""".replace("\n", "\r\n").encode()


async def test_a_bounce_marks_the_reply_failed_and_opens_nothing(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    async with email_stack(storage_config, [email_channel(dovecot, smtp_server, mailbox)]) as stack:
        _, message_id = await _reply_and_wait(stack, dovecot, mailbox)
        sent = await _delivery(stack, message_id, "sent")
        await append(dovecot, _bounce(sent.metadata_["provider_id"]), mailbox)
        failed = await _delivery(stack, message_id, "failed")
        assert failed.delivery_error is not None
        assert "Recipient address rejected" in failed.delivery_error
        assert len(await conversations(stack)) == 1
        assert len([m for m in await messages(stack) if m.direction == "in"]) == 1


async def test_an_auto_reply_opens_no_conversation_and_gets_no_answer(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    async with email_stack(storage_config, [email_channel(dovecot, smtp_server, mailbox)]) as stack:
        await append(
            dovecot,
            customer_mail(
                message_id="<ooo@example.com>",
                subject="Out of office",
                body="I am away until Monday.",
                headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
            ),
            mailbox,
        )
        await append(dovecot, customer_mail(message_id="<real@example.com>"), mailbox)
        [message] = await customer_messages(stack, 1)
        assert message.external_id == "real@example.com"
        assert channel_status(stack)["dropped_auto_replies"] == 1
        assert len(await conversations(stack)) == 1
        assert smtp_server.received == []


async def test_mailboxes_are_channels_with_their_own_teams(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    channels = [
        email_channel(dovecot, smtp_server, mailbox, name="support", team="care"),
        email_channel(
            dovecot,
            smtp_server,
            mailbox,
            name="sales",
            user="sales",
            address="sales@pishkhan.test",
            team="sales",
        ),
    ]
    routing = {"teams": [{"name": "care"}, {"name": "sales"}]}
    async with email_stack(storage_config, channels, routing=routing) as stack:
        await append(dovecot, customer_mail(message_id="<s1@example.com>"), mailbox)
        await append(
            dovecot,
            customer_mail(message_id="<s2@example.com>", to="sales@pishkhan.test"),
            mailbox,
            user="sales",
        )
        await customer_messages(stack, 2)
        found = {c.channel: c for c in await conversations(stack)}
        assert set(found) == {"support", "sales"}
        async with stack.sessions() as session:
            from storage.models import Team

            teams = dict((await session.execute(select(Team.id, Team.name))).all())
        assert teams[found["support"].team_id] == "care"  # type: ignore[index]
        assert teams[found["sales"].team_id] == "sales"  # type: ignore[index]


async def test_web_form_replies_go_by_email_and_the_answer_continues_the_conversation(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    channels = [
        {"type": "webform", "name": "contact", "reply_channel": "support"},
        email_channel(dovecot, smtp_server, mailbox),
    ]
    async with email_stack(storage_config, channels) as stack:
        agent = await stack.add_agent("sara@pishkhan.test")
        status, _ = await stack.post_form(
            "contact",
            {"name": "مریم", "email": "Maryam@Example.com", "subject": "فاکتور", "message": "سلام"},
        )
        assert status == 202
        [form] = await customer_messages(stack, 1)
        status, _ = await agent.send(
            "POST", f"/api/v1/conversations/{form.conversation_id}/messages", {"text": "پاسخ"}
        )
        assert status == 201
        [received] = await smtp_server.wait_for(1)
        mail = received.message
        assert received.rcpt_tos == ["maryam@example.com"]
        assert mail["Subject"] == "Re: فاکتور"
        assert "In-Reply-To" not in mail  # the form post has no Message-ID to answer
        await append(
            dovecot,
            customer_mail(
                message_id="<form-answer@example.com>",
                subject="Re: فاکتور",
                in_reply_to=mail["Message-ID"],
                references=mail["Message-ID"],
            ),
            mailbox,
        )
        found = await customer_messages(stack, 2)
        assert {m.conversation_id for m in found} == {form.conversation_id}


async def test_attachments_are_stored_and_served_to_who_may_see_them(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    mail = EmailMessage()
    mail["From"] = "Maryam <maryam@example.com>"
    mail["To"] = ADDRESS
    mail["Subject"] = "رسید"
    mail["Message-ID"] = "<with-file@example.com>"
    mail.set_content("رسید پیوست است.")
    mail.add_attachment(
        b"%PDF-1.4 receipt", maintype="application", subtype="pdf", filename="رسید.pdf"
    )
    routing = {"teams": [{"name": "care"}]}
    channel = email_channel(dovecot, smtp_server, mailbox, team="care")
    async with email_stack(storage_config, [channel], routing=routing) as stack:
        await append(dovecot, mail.as_bytes(), mailbox)
        [message] = await customer_messages(stack, 1)
        [file] = message.attachments["files"]
        assert file["filename"] == "رسید.pdf" and file["size"] == len(b"%PDF-1.4 receipt")
        admin = await stack.add_agent("boss@pishkhan.test", role="admin")
        outsider = await stack.add_agent("other@pishkhan.test")  # in no team
        async with admin.http.get(admin.base + file["url"]) as response:
            assert response.status == 200
            assert await response.read() == b"%PDF-1.4 receipt"
            assert response.headers["Content-Disposition"].startswith("attachment;")
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert "sandbox" in response.headers["Content-Security-Policy"]
        status, _ = await outsider.get(file["url"])
        assert status == 404
        status, _ = await admin.get("/api/v1/attachments/" + "0" * 32)
        assert status == 404
        async with stack.http.get(stack.base + file["url"]) as response:
            assert response.status == 401
        async with stack.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Attachment)) == 1


async def test_a_full_mailbox_is_read_in_batches_in_order_once(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    """More mail than one fetch batch: each batch is queued while the next is fetched and
    parsed; every mail is stored once, one sender's mails in mailbox order, all marked seen."""
    from channels.email import FETCH_BATCH

    count = FETCH_BATCH * 2 + 7
    folder = unique("full")
    mails = [
        customer_mail(
            sender=f"c{i % 3}@example.com", message_id=f"<batch{i}@example.com>", body=f"پیام {i}"
        )
        for i in range(count)
    ]
    await asyncio.to_thread(dovecot.deliver, "support", mails, folder)
    async with email_stack(storage_config, [email_channel(dovecot, smtp_server, folder)]) as stack:
        await customer_messages(stack, count, timeout=30)
        await asyncio.sleep(0.5)  # time for a duplicate to show
        found = [m for m in await messages(stack) if m.direction == "in"]  # in storing order
        assert len(found) == count
        order = [int((m.external_id or "").removeprefix("batch").partition("@")[0]) for m in found]
        for sender in range(3):
            theirs = [i for i in order if i % 3 == sender]
            assert theirs == sorted(theirs)
        await eventually(lambda: _async_seen(dovecot, folder), timeout=10)
        assert channel_status(stack)["received"] == count
