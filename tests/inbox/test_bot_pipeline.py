"""The FAQ bot through the whole of Pishkhan: the web form, the API channel and Telegram, with the
real router, Deliverer and inbox API — answers, choices (numbered lines, or Telegram buttons a tap
picks), handover to an online agent, takeover, and the FAQ suggestion an agent makes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import select

from storage.config import StorageConfig
from storage.models import Message
from tests.fixtures.stack import Stack, eventually, running_stack
from tests.fixtures.telegram_api import FakeTelegram, fake_telegram, message, user
from tests.routing.test_bot_turns import ASK_SHIPPING, KNOWLEDGE

SECRET = "crm-shared-secret-0123456789"
TEHRAN = "ارسال سفارش به تهران چقدر طول می‌کشد؟"
ALWAYS_OPEN = {
    "timezone": "UTC",
    "week": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}


def bot_settings(tmp_path: Path) -> dict[str, Any]:
    kb = tmp_path / "faq.yaml"
    kb.write_text(KNOWLEDGE, encoding="utf-8")
    return {
        "business_hours": ALWAYS_OPEN,
        "bot": {"knowledge_base": str(kb), "answer_at": 0.9, "suggest_at": 0.3},
    }


async def _value(value: Any) -> Any:
    return value


async def bot_messages(stack: Stack, count: int) -> list[Message]:
    async def probe() -> list[Message] | None:
        async with stack.sessions() as session:
            found = (
                await session.scalars(
                    select(Message).where(Message.author_kind == "bot").order_by(Message.id)
                )
            ).all()
        return list(found) if len(found) >= count else None

    return await eventually(probe, timeout=8.0)


# the web form ---------------------------------------------------------------------------------


async def test_a_web_form_without_a_reply_channel_goes_straight_to_the_agents(
    storage_config: StorageConfig, tmp_path: Path
) -> None:
    """Its answers could reach nobody: the bot leaves it alone, and an agent gets it at once."""
    extra = {
        "routing": bot_settings(tmp_path),
        "channels": [{"type": "webform", "name": "contact", "bot": "faq"}],
    }
    async with running_stack(storage_config, extra) as stack:
        sara = await stack.add_agent("sara@example.com")
        status, _ = await stack.post_form(
            "contact", {"name": "مریم", "email": "maryam@example.com", "message": TEHRAN}
        )
        assert status in (200, 201, 202)

        async def assigned() -> dict[str, Any] | None:
            _, listing = await sara.get("/api/v1/conversations?assignee=me")
            return listing["conversations"][0] if listing["conversations"] else None

        conversation = await eventually(assigned)
        assert conversation["status"] == "open"
        _, detail = await sara.get(f"/api/v1/conversations/{conversation['id']}")
        assert [m["author_kind"] for m in detail["messages"]] == ["customer"]


# the API channel ------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def callbacks() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def callback(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if request.headers.get("X-Pishkhan-Signature") != expected:
            return web.Response(status=401)
        received.append(json.loads(body))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/replies", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/replies", received
    await runner.cleanup()


async def post_api(stack: Stack, message_id: str, text: str, thread: str) -> None:
    body = json.dumps(
        {
            "id": message_id,
            "sender": {"id": "cust-9", "name": "نگار"},
            "text": text,
            "thread_id": thread,
        },
        ensure_ascii=False,
    ).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with stack.http.post(
        stack.base + "/channels/api/crm/messages",
        data=body,
        headers={"X-Pishkhan-Signature": signature, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 202, await response.text()


async def test_api_channel_choices_by_number_then_an_unknown_question_becomes_a_suggestion(
    storage_config: StorageConfig,
    tmp_path: Path,
    callbacks: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = callbacks
    monkeypatch.setenv("PISHKHAN_TEST_CRM_SECRET", SECRET)
    extra = {
        "routing": bot_settings(tmp_path),
        "channels": [
            {
                "type": "api",
                "name": "crm",
                "secret": "${PISHKHAN_TEST_CRM_SECRET}",
                "callback_url": url,
                "bot": "faq",
            }
        ],
    }
    async with running_stack(storage_config, extra) as stack:
        ali = await stack.add_agent("ali@example.com")
        await post_api(stack, "crm-1", ASK_SHIPPING, "case-1")
        await eventually(lambda: _value(received))
        offer = received[0]
        assert offer["author"] == "دستیار پیشخوان" and offer["thread_id"] == "case-1"
        assert "۱. " in offer["text"] and "۲. " in offer["text"]  # no buttons on this channel
        second = offer["text"].split("۲. ")[1].split("\n")[0]

        await post_api(stack, "crm-2", "2", "case-1")
        await eventually(lambda: _value(len(received) >= 2))
        tehran = "سفارش‌های تهران یک روزه می‌رسند."
        other = "ارسال به شهرستان‌ها دو تا چهار روز کاری طول می‌کشد."
        assert received[1]["text"] == (tehran if "تهران" in second else other)

        question = "آیا امکان پرداخت اقساطی وجود دارد؟"
        await post_api(stack, "crm-3", question, "case-2")
        await eventually(lambda: _value(len(received) >= 3))
        assert received[2]["text"].startswith("پاسخ این پرسش را نمی‌دانم")
        messages = await bot_messages(stack, 3)
        conversation_id = messages[-1].conversation_id

        async def with_ali() -> bool:
            _, detail = await ali.get(f"/api/v1/conversations/{conversation_id}")
            return detail["assignee_id"] == ali.id and detail["status"] == "open"

        await eventually(with_ali)
        path = f"/api/v1/conversations/{conversation_id}"
        status, _ = await ali.send("POST", path + "/messages", {"text": "بله، در سه قسط."})
        assert status == 201
        status, suggestion = await ali.send("POST", path + "/faq-suggestion", {})
        assert status == 201, suggestion
        assert suggestion["question"] == question and suggestion["answer"] == "بله، در سه قسط."
        assert suggestion["status"] == "pending" and suggestion["language"] == "fa"


# Telegram -------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    async with fake_telegram() as server:
        monkeypatch.setenv("PISHKHAN_TEST_TELEGRAM_TOKEN", server.token)
        yield server


async def test_telegram_choices_are_buttons_a_tap_picks_and_takeover_silences(
    storage_config: StorageConfig, tmp_path: Path, fake: FakeTelegram
) -> None:
    channel = {
        "type": "telegram",
        "name": "tg",
        "token": "${PISHKHAN_TEST_TELEGRAM_TOKEN}",
        "base_url": fake.base_url,
        "poll_timeout_seconds": 1,
        "per_chat_interval_seconds": 0,
        "bot": "faq",
    }
    extra = {"routing": bot_settings(tmp_path), "channels": [channel]}
    fake.push({"message": message(777, 1, text=ASK_SHIPPING)})
    async with running_stack(storage_config, extra) as stack:
        sara = await stack.add_agent("sara@example.com")
        [offer] = await eventually(lambda: _value(fake.sent("sendMessage")), timeout=8.0)
        assert offer.params["text"] == "منظورتان یکی از این‌هاست؟"
        markup = offer.json("reply_markup")
        buttons = [row[0] for row in markup["inline_keyboard"]]
        assert len(buttons) >= 2 and all(b["callback_data"].startswith("qr:") for b in buttons)

        shown = message(777, 2, text=offer.params["text"], reply_markup=markup)
        shown["from"] = {"id": 123456, "is_bot": True, "first_name": "bot"}
        fake.push(
            {
                "callback_query": {
                    "id": "tap-1",
                    "from": user(777),
                    "chat_instance": "c",
                    "data": buttons[1]["callback_data"],
                    "message": shown,
                }
            }
        )
        sent = await eventually(
            lambda: _value(len(fake.sent("sendMessage")) >= 2 and fake.sent("sendMessage")),
            timeout=8.0,
        )
        picked = buttons[1]["text"]
        expected = (
            "سفارش‌های تهران یک روزه می‌رسند."
            if "تهران" in picked
            else "ارسال به شهرستان‌ها دو تا چهار روز کاری طول می‌کشد."
        )
        assert sent[1].params["text"] == expected

        messages = await bot_messages(stack, 2)
        path = f"/api/v1/conversations/{messages[0].conversation_id}"
        status, taken = await sara.send("POST", path + "/take-over")
        assert status == 200 and taken["assignee_id"] == sara.id and taken["status"] == "open"
        fake.push({"message": message(777, 3, text=TEHRAN)})

        async def stored_third() -> bool:
            _, detail = await sara.get(path)
            return len([m for m in detail["messages"] if m["author_kind"] == "customer"]) >= 3

        await eventually(stored_third, timeout=8.0)
        await asyncio.sleep(0.2)
        assert len(fake.sent("sendMessage")) == 2  # the bot stays silent after the takeover
        assert len(await bot_messages(stack, 2)) == 2
