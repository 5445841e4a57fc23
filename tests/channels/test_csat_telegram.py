"""A satisfaction survey on Telegram through the whole stack (the fake Bot API): the question
arrives with an inline keyboard, and the tapped button records the rating without reopening."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from storage.config import StorageConfig
from storage.models import Conversation, CsatSurvey
from tests.channels.test_telegram_pipeline import stored
from tests.fixtures.stack import eventually, running_stack
from tests.fixtures.telegram_api import FakeTelegram, fake_telegram, message, user


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with fake_telegram() as server:
        yield server


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch, fake: FakeTelegram) -> None:
    monkeypatch.setenv("PISHKHAN_TEST_TELEGRAM_TOKEN", fake.token)


async def _async(value: Any) -> Any:
    return value


async def test_the_survey_has_buttons_and_a_tap_rates_without_reopening(
    storage_config: StorageConfig, fake: FakeTelegram
) -> None:
    channel = {
        "type": "telegram",
        "name": "tg",
        "token": "${PISHKHAN_TEST_TELEGRAM_TOKEN}",
        "base_url": fake.base_url,
        "poll_timeout_seconds": 1,
        "per_chat_interval_seconds": 0,
    }
    settings = {"channels": [channel], "routing": {"csat": {"channels": ["tg"]}}}
    fake.push({"message": message(777, 1, text="سلام، بسته‌ام آسیب دیده رسیده است")})
    async with running_stack(storage_config, settings) as stack:
        agent = await stack.add_agent("sara@pishkhan.test")
        [first] = await stored(stack, 1)
        conversation_id = first.conversation_id
        await agent.send(
            "POST",
            f"/api/v1/conversations/{conversation_id}/messages",
            {"text": "عذرخواهی می‌کنیم؛ بسته‌ی جایگزین امروز ارسال شد."},
        )
        status, _ = await agent.send(
            "PUT", f"/api/v1/conversations/{conversation_id}/status", {"status": "resolved"}
        )
        assert status == 200
        _, question = await eventually(
            lambda: _async(len(fake.sent("sendMessage")) >= 2 and fake.sent("sendMessage"))
        )
        assert question.chat_id == "777"
        assert question.params["text"].startswith("از پاسخگویی ما")
        markup = json.loads(question.params["reply_markup"])
        labels = [row[0]["text"] for row in markup["inline_keyboard"]]
        assert labels == ["۵ ⭐ عالی", "۴ خوب", "۳ متوسط", "۲ ضعیف", "۱ خیلی بد"]

        # The customer taps "۴ خوب": Telegram sends the tap with the message it was under.
        bot_message = message(777, 90, text=question.params["text"], reply_markup=markup)
        bot_message["from"] = {"id": 123456, "is_bot": True, "first_name": "bot"}
        tapped = markup["inline_keyboard"][1][0]["callback_data"]
        fake.push(
            {
                "callback_query": {
                    "id": "cb-csat",
                    "from": user(),
                    "chat_instance": "c",
                    "data": tapped,
                    "message": bot_message,
                }
            }
        )

        async def answered() -> CsatSurvey | None:
            async with stack.sessions() as session:
                survey = await session.scalar(select(CsatSurvey))
            return survey if survey is not None and survey.rating is not None else None

        survey = await eventually(answered, timeout=8)
        assert (survey.rating, survey.status, survey.agent_id) == (4, "answered", agent.id)
        async with stack.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None and conversation.status == "resolved"
        # The customer is thanked and asked for a comment in the chat.
        asked = await eventually(
            lambda: _async(len(fake.sent("sendMessage")) >= 3 and fake.sent("sendMessage"))
        )
        assert asked[-1].params["text"].startswith("سپاس از امتیاز شما")
        _, detail = await agent.get(f"/api/v1/conversations/{conversation_id}")
        assert detail["csat"]["rating"] == 4 and detail["status"] == "resolved"
