"""When the chat visitor has left, the answer follows by email (`away_reply_channel`), through
the whole stack: Dovecot and aiosmtpd on loopback, the visitor's email answer threading back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from sqlalchemy import select

from inbox.config import ConfigError, parse_config
from storage.config import StorageConfig
from storage.models import Message
from tests.channels.test_email_transport import (
    ADDRESS,
    ENV,
    append,
    customer_messages,
    email_channel,
)
from tests.channels.test_webchat import ALWAYS_OPEN, ORIGIN, conversation_of, visitor
from tests.channels.test_webchat_files import fetch, reply_with_file
from tests.channels.test_webchat_upload import PNG
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

SUBJECT = "گفتگوی شما با فروشگاه نمونه"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, PASSWORD)


@pytest.fixture
def mailbox(dovecot: Dovecot) -> str:
    name = unique("box")
    dovecot.create("support", name)
    return name


def chat(**extra: Any) -> dict[str, Any]:
    return {
        "type": "webchat",
        "name": "site",
        "allowed_origins": [ORIGIN],
        "title": "فروشگاه نمونه",
        "away_reply_channel": "support",
        **extra,
    }


@asynccontextmanager
async def away_stack(
    storage: StorageConfig, dovecot: Dovecot, smtp: SmtpServer, mailbox: str, **extra: Any
) -> AsyncIterator[Stack]:
    settings = {
        "channels": [chat(**extra), email_channel(dovecot, smtp, mailbox)],
        "routing": {"business_hours": ALWAYS_OPEN},
    }
    async with running_stack(storage, settings) as stack:
        yield stack


async def left(stack: Stack) -> None:
    """Until the server has seen every socket of the channel close."""
    assert stack.runtime.services is not None
    channel = stack.runtime.services.channels["site"]

    async def gone() -> bool:
        return bool(channel.status()["connections"] == 0)

    await eventually(gone)


async def delivered(stack: Stack, conversation_id: int) -> Message:
    async def probe() -> Message | None:
        async with stack.sessions() as session:
            reply = await session.scalar(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.direction == "out")
                .order_by(Message.id.desc())
                .limit(1)
            )
        done = reply is not None and reply.delivery_status in ("sent", "failed")
        return reply if done else None

    return await eventually(probe, timeout=10)


async def test_the_answer_follows_by_email_and_the_email_answer_continues_the_chat(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    async with away_stack(storage_config, dovecot, smtp_server, mailbox) as stack:
        async with visitor(stack, name="مریم", email="Maryam@Example.com") as (chat, welcome):
            await chat.send({"type": "message", "client_id": "a1", "text": "سفارشم کجاست؟"})
            await chat.expect("ack", client_id="a1")
            conversation_id = await conversation_of(stack, welcome["visitor"])
        await left(stack)

        sara = await stack.add_agent("sara@pishkhan.test")
        await reply_with_file(sara, conversation_id, text="سفارش شما فردا می‌رسد")
        [received] = await smtp_server.wait_for(1)
        mail = received.message
        assert received.rcpt_tos == ["maryam@example.com"]
        assert received.mail_from == ADDRESS and ADDRESS in mail["From"]
        assert mail["Subject"] == f"Re: {SUBJECT}"
        assert "سفارش شما فردا می‌رسد" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        [attached] = list(mail.iter_attachments())
        assert attached.get_filename() == "راهنمای مرجوعی.pdf"
        reply = await delivered(stack, conversation_id)
        assert reply.delivery_status == "sent" and reply.delivery_error is None
        assert reply.metadata_["followed_by_email"] is True

        # Maryam answers the mail, with a photo: it lands in the same chat conversation.
        answer = BytesParser(policy=policy.default).parsebytes(
            customer_mail(
                message_id="<maryam-answer@example.com>",
                subject=mail["Subject"],
                body="ممنون، منتظرم",
                in_reply_to=mail["Message-ID"],
                references=mail["Message-ID"],
            )
        )
        assert isinstance(answer, EmailMessage)
        answer.add_attachment(PNG, maintype="image", subtype="png", filename="رسید.png")
        await append(dovecot, answer.as_bytes(policy=policy.SMTP), mailbox)
        found = await customer_messages(stack, 2)
        assert {m.conversation_id for m in found} == {conversation_id}

        # Back in the widget, she sees the reply, and her email answer, in the history; the
        # files of both download from there.
        async with visitor(stack, token=welcome["token"]) as (_chat, back):
            texts = [(m["from"], m["text"]) for m in back["messages"]]
            assert ("agent", "سفارش شما فردا می‌رسد") in texts
            assert texts[-1] == ("visitor", "ممنون، منتظرم")
            links = {
                file["filename"]: file["link"]
                for line in back["messages"]
                for file in line["attachments"]
            }
        assert set(links) == {"راهنمای مرجوعی.pdf", "رسید.png"}
        status, body, _ = await fetch(stack, links["رسید.png"])
        assert status == 200 and body == PNG


async def test_with_the_chat_open_no_email_goes_out(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    async with away_stack(storage_config, dovecot, smtp_server, mailbox) as stack:
        sara = await stack.add_agent("sara@pishkhan.test")
        async with visitor(stack, email="maryam@example.com") as (chat, welcome):
            await chat.send({"type": "message", "client_id": "b1", "text": "سلام"})
            await chat.expect("ack", client_id="b1")
            conversation_id = await conversation_of(stack, welcome["visitor"])
            status, _ = await sara.send(
                "POST", f"/api/v1/conversations/{conversation_id}/messages", {"text": "بفرمایید"}
            )
            assert status == 201
            assert (await chat.expect("message"))["text"] == "بفرمایید"
            reply = await delivered(stack, conversation_id)
        assert reply.delivery_status == "sent" and "followed_by_email" not in reply.metadata_
        await asyncio.sleep(0.3)
        assert smtp_server.received == []


async def test_without_an_email_the_reply_waits_in_the_chat(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    async with away_stack(storage_config, dovecot, smtp_server, mailbox) as stack:
        sara = await stack.add_agent("sara@pishkhan.test")
        async with visitor(stack) as (chat, welcome):
            await chat.send({"type": "message", "client_id": "c1", "text": "سلام"})
            await chat.expect("ack", client_id="c1")
            conversation_id = await conversation_of(stack, welcome["visitor"])
        await left(stack)
        status, _ = await sara.send(
            "POST", f"/api/v1/conversations/{conversation_id}/messages", {"text": "بفرمایید"}
        )
        assert status == 201
        reply = await delivered(stack, conversation_id)
        assert reply.delivery_status == "sent" and "followed_by_email" not in reply.metadata_
        assert smtp_server.received == []


async def test_a_refused_email_shows_the_reply_failed_with_the_reason(
    storage_config: StorageConfig, dovecot: Dovecot, smtp_server: SmtpServer, mailbox: str
) -> None:
    smtp_server.answers.append("554 5.7.1 mailbox unavailable")
    async with away_stack(storage_config, dovecot, smtp_server, mailbox) as stack:
        sara = await stack.add_agent("sara@pishkhan.test")
        async with visitor(stack, email="maryam@example.com") as (chat, welcome):
            await chat.send({"type": "message", "client_id": "d1", "text": "سلام"})
            await chat.expect("ack", client_id="d1")
            conversation_id = await conversation_of(stack, welcome["visitor"])
        await left(stack)
        status, _ = await sara.send(
            "POST", f"/api/v1/conversations/{conversation_id}/messages", {"text": "بفرمایید"}
        )
        assert status == 201
        reply = await delivered(stack, conversation_id)
        assert reply.delivery_status == "failed"
        assert reply.delivery_error is not None
        assert "the visitor had left" in reply.delivery_error and "554" in reply.delivery_error


def test_the_away_reply_channel_must_be_an_enabled_email_channel() -> None:
    mail = {
        "type": "email",
        "name": "support",
        "address": ADDRESS,
        "imap_host": "127.0.0.1",
        "imap_username": "support",
        "imap_password": "${PISHKHAN_TEST_MAIL_PASSWORD}",
        "smtp_host": "127.0.0.1",
    }
    assert parse_config({"channels": [chat(), mail]}).channels[0].away_reply_channel == "support"  # type: ignore[union-attr]
    for channels, words in (
        ([chat()], "no channel is named 'support'"),
        ([chat(), {"type": "webform", "name": "support"}], "it must be an email channel"),
        ([chat(), {**mail, "enabled": False}], "disabled"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_config({"channels": channels})
        assert "channels[0].away_reply_channel" in str(caught.value)
        assert words in str(caught.value)
