"""Telegram through the whole of Pishkhan: a customer's messages become a conversation, the agent's
reply reaches the chat, edits show as edits, a shared phone finds the same customer, and nothing
is lost or doubled across redeliveries and restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from storage.config import StorageConfig
from storage.models import Conversation, Message
from tests.fixtures.stack import Stack, eventually, running_stack
from tests.fixtures.telegram_api import FakeTelegram, fake_telegram, message, user

SECRET = "pipeline_webhook_secret"


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch, fake: FakeTelegram) -> None:
    monkeypatch.setenv("PISHKHAN_TEST_TELEGRAM_TOKEN", fake.token)
    monkeypatch.setenv("PISHKHAN_TEST_TELEGRAM_SECRET", SECRET)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with fake_telegram() as server:
        yield server


@asynccontextmanager
async def telegram_stack(
    storage: StorageConfig, fake: FakeTelegram, **extra: Any
) -> AsyncIterator[Stack]:
    channel = {
        "type": "telegram",
        "name": "tg",
        "token": "${PISHKHAN_TEST_TELEGRAM_TOKEN}",
        "base_url": fake.base_url,
        "poll_timeout_seconds": 1,
        "per_chat_interval_seconds": 0,
        **extra,
    }
    channels = [{"type": "webform", "name": "contact"}, channel]
    async with running_stack(storage, {"channels": channels}) as stack:
        yield stack


async def stored(stack: Stack, count: int, timeout: float = 8.0) -> list[Message]:  # noqa: ASYNC109
    async def probe() -> list[Message] | None:
        async with stack.sessions() as session:
            found = (
                await session.scalars(
                    select(Message).where(Message.direction == "in").order_by(Message.id)
                )
            ).all()
        return list(found) if len(found) >= count else None

    return await eventually(probe, timeout=timeout)


async def count_messages(stack: Stack) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


async def test_a_chat_becomes_a_conversation_and_the_agent_answers_in_it(
    storage_config: StorageConfig, fake: FakeTelegram
) -> None:
    fake.push({"message": message(777, 1, text="/start pricing-page")})
    fake.push({"message": message(777, 2, text="سفارش ۱۲۳ کی می‌رسد؟")})
    async with telegram_stack(storage_config, fake) as stack:
        agent = await stack.add_agent("sara@pishkhan.test")
        first, second = await stored(stack, 2)
        assert first.conversation_id == second.conversation_id
        assert (first.channel, first.external_id) == ("tg", "777:1")

        status, conversation = await agent.get(f"/api/v1/conversations/{first.conversation_id}")
        assert status == 200
        assert conversation["metadata"]["start_payload"] == "pricing-page"
        assert conversation["thread_id"] == "777"
        assert conversation["customer"]["name"] == "مریم احمدی"

        status, _ = await agent.send(
            "POST",
            f"/api/v1/conversations/{first.conversation_id}/messages",
            {"text": "فردا به دستتان می‌رسد."},
        )
        assert status == 201
        [sent] = await eventually(lambda: _async(fake.sent("sendMessage")))
        assert sent.chat_id == "777"
        assert sent.params["text"] == "فردا به دستتان می‌رسد."

        async def delivered() -> Message | None:
            async with stack.sessions() as session:
                reply = await session.scalar(select(Message).where(Message.direction == "out"))
            return reply if reply is not None and reply.delivery_status == "sent" else None

        reply = await eventually(delivered)
        assert reply.metadata_["provider_id"].startswith("777:")

        # The customer corrects their message: the correction is shown as an edit of it.
        edited = message(777, 2, text="سفارش ۱۲۴ کی می‌رسد؟")
        edited["edit_date"] = edited["date"] + 30
        fake.push({"edited_message": edited})
        *_, edit = await stored(stack, 3)
        assert edit.metadata_["edit_of"] == "777:2"
        assert edit.conversation_id == first.conversation_id
        _, conversation = await agent.get(f"/api/v1/conversations/{first.conversation_id}")
        shown = {m["id"]: m for m in conversation["messages"]}
        assert shown[second.id]["metadata"]["edited"] is True
        assert shown[edit.id]["metadata"]["edit_of"] == "777:2"
        assert shown[edit.id]["text"] == "سفارش ۱۲۴ کی می‌رسد؟"

        # A redelivered message (a new update id, the same message) is stored once.
        fake.push({"message": message(777, 2, text="سفارش ۱۲۳ کی می‌رسد؟")})
        fake.push({"message": message(777, 3, text="ممنون")})
        inbound = await stored(stack, 4)
        assert [m.external_id for m in inbound].count("777:2") == 1
        assert len(inbound) == 4


async def _async(value: Any) -> Any:
    return value


async def test_a_shared_phone_finds_the_customer_who_wrote_by_web_form(
    storage_config: StorageConfig, fake: FakeTelegram
) -> None:
    async with telegram_stack(storage_config, fake) as stack:
        status, _ = await stack.post_form(
            "contact", {"name": "مریم", "phone": "0912 123 4567", "message": "لطفاً تماس بگیرید"}
        )
        assert status == 202
        [form] = await stored(stack, 1)
        contact = {"phone_number": "989121234567", "first_name": "مریم", "user_id": 777}
        fake.push({"message": message(777, 1, contact=contact)})
        _, shared = await stored(stack, 2)
        async with stack.sessions() as session:
            form_conversation = await session.get(Conversation, form.conversation_id)
            chat_conversation = await session.get(Conversation, shared.conversation_id)
        assert form_conversation is not None and chat_conversation is not None
        assert chat_conversation.channel == "tg"
        assert chat_conversation.customer_id == form_conversation.customer_id


async def test_a_restart_resumes_where_it_stopped(
    storage_config: StorageConfig, fake: FakeTelegram
) -> None:
    fake.push({"message": message(777, 1, text="یک")})
    fake.push({"message": message(888, 1, text="دو", sender=user(888, "علی", "رضایی"))})
    async with telegram_stack(storage_config, fake) as stack:
        await stored(stack, 2)
    fake.push({"message": message(777, 2, text="سه")})
    fake.push({"message": message(888, 2, text="چهار", sender=user(888, "علی", "رضایی"))})
    async with telegram_stack(storage_config, fake) as stack:
        inbound = await stored(stack, 4)
        assert sorted(m.text for m in inbound) == sorted(["یک", "دو", "سه", "چهار"])
        assert await count_messages(stack) == 4
        async with stack.sessions() as session:
            conversations = (await session.scalars(select(Conversation))).all()
        assert sorted(c.thread_id or "" for c in conversations) == ["777", "888"]


async def test_webhook_mode_end_to_end_and_a_blocked_customer(
    storage_config: StorageConfig, fake: FakeTelegram
) -> None:
    async with telegram_stack(
        storage_config,
        fake,
        mode="webhook",
        webhook_secret="${PISHKHAN_TEST_TELEGRAM_SECRET}",
    ) as stack:
        await eventually(lambda: _async(fake.webhook))
        assert fake.webhook is not None
        assert fake.webhook["url"].endswith("/channels/telegram/tg/webhook")
        url = f"{stack.base}/channels/telegram/tg/webhook"
        update = {"update_id": 1, "message": message(777, 1, text="از طریق وب‌هوک")}
        async with stack.http.post(
            url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "no"}
        ) as response:
            assert response.status == 401
        async with stack.http.post(url, json=update) as response:
            assert response.status == 401
        assert await count_messages(stack) == 0
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with stack.http.post(url, json=update, headers=headers) as response:
            assert response.status == 200
        [first] = await stored(stack, 1)

        agent = await stack.add_agent("sara@pishkhan.test")
        fake.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
        status, _ = await agent.send(
            "POST", f"/api/v1/conversations/{first.conversation_id}/messages", {"text": "سلام"}
        )
        assert status == 201

        async def failed() -> Message | None:
            async with stack.sessions() as session:
                reply = await session.scalar(select(Message).where(Message.direction == "out"))
            return reply if reply is not None and reply.delivery_status == "failed" else None

        reply = await eventually(failed)
        assert "bot was blocked by the user" in (reply.delivery_error or "")
        assert len(fake.sent("sendMessage")) == 1  # permanent: not retried


async def test_a_photo_is_downloadable_by_the_agent(
    storage_config: StorageConfig, fake: FakeTelegram
) -> None:
    fake.add_file("photo-big", b"\xff\xd8\xff receipt", "photos/file_7.jpg")
    photo = [
        {"file_id": "photo-small", "file_unique_id": "s", "width": 90, "height": 90},
        {"file_id": "photo-big", "file_unique_id": "b", "width": 900, "height": 900},
    ]
    fake.push({"message": message(777, 1, photo=photo, caption="رسید پرداخت")})
    async with telegram_stack(storage_config, fake) as stack:
        agent = await stack.add_agent("sara@pishkhan.test")
        [stored_message] = await stored(stack, 1)
        _, conversation = await agent.get(f"/api/v1/conversations/{stored_message.conversation_id}")
        [shown] = conversation["messages"]
        assert shown["text"] == "رسید پرداخت"
        [file] = shown["attachments"]
        async with agent.http.get(stack.base + file["url"]) as response:
            assert response.status == 200
            assert await response.read() == b"\xff\xd8\xff receipt"
            assert response.headers["Content-Type"] == "image/jpeg"


async def test_several_bots_are_several_channels(
    storage_config: StorageConfig, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fake_telegram() as other:
        other.token = "654321:the-second-bot"
        fake.push({"message": message(777, 1, text="به ربات اول")})
        other.push({"message": message(777, 1, text="به ربات دوم")})
        channels = [
            {
                "type": "telegram",
                "name": "tg",
                "token": "${PISHKHAN_TEST_TELEGRAM_TOKEN}",
                "base_url": fake.base_url,
                "poll_timeout_seconds": 1,
            },
            {
                "type": "telegram",
                "name": "tg-sales",
                "token": "${PISHKHAN_TEST_TELEGRAM_TOKEN_2}",
                "base_url": other.base_url,
                "poll_timeout_seconds": 1,
            },
        ]
        monkeypatch.setenv("PISHKHAN_TEST_TELEGRAM_TOKEN_2", other.token)
        async with running_stack(storage_config, {"channels": channels}) as stack:
            inbound = await stored(stack, 2)
            by_channel = {m.channel: m for m in inbound}
            assert by_channel["tg"].text == "به ربات اول"
            assert by_channel["tg-sales"].text == "به ربات دوم"
            assert by_channel["tg"].conversation_id != by_channel["tg-sales"].conversation_id
            agent = await stack.add_agent("sara@pishkhan.test")
            status, _ = await agent.send(
                "POST",
                f"/api/v1/conversations/{by_channel['tg-sales'].conversation_id}/messages",
                {"text": "از طرف فروش"},
            )
            assert status == 201
            [sent] = await eventually(lambda: _async(other.sent("sendMessage")))
            assert sent.params["text"] == "از طرف فروش"
            assert fake.sent("sendMessage") == []
