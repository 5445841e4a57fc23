"""WhatsApp and Messenger through the whole of Pishkhan (SQLite and PostgreSQL): Meta's
handshake at `/channels/meta/<name>/webhook`, signed batches stored once however often Meta
delivers them, the customer recognized by phone across channels, an agent's reply reaching
the Graph API and its statuses moving it to delivered and read, media fetched again after a
failure, and the bot's choices as buttons the customer taps."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from storage.config import StorageConfig
from storage.models import Conversation, Customer, Message
from tests.fixtures.graph_api import (
    APP_SECRET,
    IG_ACCOUNT_ID,
    VERIFY_TOKEN,
    FakeGraph,
    channel_config,
    fake_graph,
    ms_event,
    page,
    signed,
    wa_message,
    wa_status,
    wa_text,
    whatsapp,
)
from tests.fixtures.stack import Stack, eventually, running_stack

KNOWLEDGE = """
- question: ارسال سفارش به شهرستان چقدر طول می‌کشد؟
  answer: ارسال به شهرستان‌ها دو تا چهار روز کاری طول می‌کشد.
  language: fa
- question: ارسال سفارش به تهران چقدر طول می‌کشد؟
  answer: سفارش‌های تهران یک روزه می‌رسند.
  language: fa
"""


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with fake_graph() as server:
        yield server


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch, fake: FakeGraph) -> None:
    monkeypatch.setenv("PISHKHAN_TEST_META_TOKEN", fake.token)
    monkeypatch.setenv("PISHKHAN_TEST_META_SECRET", APP_SECRET)
    monkeypatch.setenv("PISHKHAN_TEST_META_VERIFY", VERIFY_TOKEN)


def _entry(kind: str, fake: FakeGraph, **extra: Any) -> dict[str, Any]:
    return {
        **channel_config(kind, fake, **extra),
        "access_token": "${PISHKHAN_TEST_META_TOKEN}",
        "app_secret": "${PISHKHAN_TEST_META_SECRET}",
        "verify_token": "${PISHKHAN_TEST_META_VERIFY}",
    }


@asynccontextmanager
async def meta_stack(
    storage: StorageConfig, fake: FakeGraph, extra: dict[str, Any] | None = None, **wa: Any
) -> AsyncIterator[Stack]:
    channels = [
        {"type": "webform", "name": "contact"},
        _entry("whatsapp", fake, **wa),
        _entry("messenger", fake),
        _entry("instagram", fake, comments="public"),
    ]
    async with running_stack(storage, {"channels": channels, **(extra or {})}) as stack:
        yield stack


async def deliver(stack: Stack, name: str, delivery: dict[str, Any]) -> tuple[int, Any]:
    body, headers = signed(delivery)
    async with stack.http.post(
        f"{stack.base}/channels/meta/{name}/webhook", data=body, headers=headers
    ) as response:
        return response.status, await response.json(content_type=None)


async def inbound(stack: Stack, count: int) -> list[Message]:
    async def probe() -> list[Message] | None:
        async with stack.sessions() as session:
            found = (
                await session.scalars(
                    select(Message).where(Message.direction == "in").order_by(Message.id)
                )
            ).all()
        return list(found) if len(found) >= count else None

    return await eventually(probe, timeout=8.0)


async def count_in(stack: Stack) -> int:
    async with stack.sessions() as session:
        query = select(func.count()).select_from(Message).where(Message.direction == "in")
        return int(await session.scalar(query) or 0)


async def reply_of(stack: Stack, status: str) -> Message:
    async def probe() -> Message | None:
        async with stack.sessions() as session:
            reply = await session.scalar(
                select(Message).where(Message.direction == "out").order_by(Message.id.desc())
            )
        return reply if reply is not None and reply.delivery_status == status else None

    return await eventually(probe, timeout=8.0)


async def test_handshake_batches_replays_replies_and_statuses(
    storage_config: StorageConfig, fake: FakeGraph
) -> None:
    async with meta_stack(storage_config, fake) as stack:
        agent = await stack.add_agent("sara@pishkhan.test")
        url = f"{stack.base}/channels/meta/wa/webhook"
        query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
        async with stack.http.get(url, params=query) as response:
            assert (response.status, await response.text()) == (200, "42")
        async with stack.http.get(url, params={**query, "hub.verify_token": "x"}) as response:
            assert response.status == 403

        customer = "989121234567"
        batch = whatsapp(
            wa_text(customer, "wamid.A1", "سلام، سفارش ۱۲۳ من کجاست؟"),
            wa_text(customer, "wamid.A2", "کد پیگیری هم ندارم."),
            wa_message(customer, "wamid.A3", "reaction", {"message_id": "wamid.A1", "emoji": "🙏"}),
            contacts=((customer, "مریم احمدی"),),
        )
        body, headers = signed(batch)
        # Unsigned and wrongly signed: refused, nothing stored.
        async with stack.http.post(url, data=body) as response:
            assert response.status == 401
        async with stack.http.post(
            url, data=body, headers={**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
        ) as response:
            assert response.status == 401
        assert await count_in(stack) == 0

        assert await deliver(stack, "wa", batch) == (200, {"queued": 3})
        first, second, reaction = await inbound(stack, 3)
        assert first.conversation_id == second.conversation_id == reaction.conversation_id
        assert (first.channel, first.external_id) == ("wa", "wamid.A1")
        assert reaction.metadata_["reaction_to"] == "wamid.A1"
        # Meta delivers the same again (it did not hear our answer): stored once.
        assert (await deliver(stack, "wa", batch))[0] == 200
        async with (
            aiohttp.ClientSession() as other,  # as if from another connection
            other.post(url, data=body, headers=headers) as response,
        ):
            assert response.status == 200

        status, conversation = await agent.get(f"/api/v1/conversations/{first.conversation_id}")
        assert status == 200
        assert conversation["customer"]["name"] == "مریم احمدی"
        assert conversation["thread_id"] == customer

        status, _ = await agent.send(
            "POST",
            f"/api/v1/conversations/{first.conversation_id}/messages",
            {"text": "سفارش شما فردا می‌رسد."},
        )
        assert status == 201
        sent = await reply_of(stack, "sent")
        [call] = fake.sent("messages")
        assert call.body["to"] == customer
        assert call.body["text"]["body"] == "سفارش شما فردا می‌رسد."
        wamid = sent.provider_id
        assert wamid and wamid.startswith("wamid.SENT")

        statuses = whatsapp(
            statuses=(wa_status(wamid, "delivered", customer), wa_status(wamid, "read", customer))
        )
        assert (await deliver(stack, "wa", statuses))[0] == 200
        read = await reply_of(stack, "read")
        assert set(read.metadata_["delivery_reports"]) == {
            f"status:{wamid}:delivered",
            f"status:{wamid}:read",
        }
        # A late "delivered" never moves a read reply back.
        await deliver(stack, "wa", whatsapp(statuses=(wa_status(wamid, "delivered", customer),)))
        assert await count_in(stack) == 3

        # A reply Meta reports failed (outside the window): failed, with Meta's words.
        await agent.send(
            "POST", f"/api/v1/conversations/{first.conversation_id}/messages", {"text": "و…"}
        )
        later = await reply_of(stack, "sent")
        error = {
            "code": 131047,
            "title": "Re-engagement message",
            "error_data": {"details": "more than 24 hours have passed"},
        }
        failed = wa_status(later.provider_id or "", "failed", customer, errors=[error])
        await deliver(stack, "wa", whatsapp(statuses=(failed,)))
        failed_reply = await reply_of(stack, "failed")
        assert failed_reply.delivery_error == (
            "Meta could not deliver it (131047): Re-engagement message — "
            "more than 24 hours have passed"
        )

        # The admin's channel list shows the channel's state, and the error of a refused send.
        fake.fail("messages", 400, 131047, "Re-engagement message")
        await agent.send(
            "POST", f"/api/v1/conversations/{first.conversation_id}/messages", {"text": "؟"}
        )
        await reply_of(stack, "failed")
        admin = await stack.add_agent("admin@pishkhan.test", role="admin")
        status, listed = await admin.get("/api/v1/channels")
        assert status == 200
        [wa] = [c for c in listed["channels"] if c["name"] == "wa"]
        assert wa["type"] == "whatsapp" and wa["status"] == "running"
        assert "Re-engagement message" in wa["last_error"]
        assert wa["webhook_url"] == "/channels/meta/wa/webhook"
        assert wa["last_webhook_at"] and wa["last_send_at"]


async def test_a_whatsapp_customer_is_the_web_form_customer_with_that_phone(
    storage_config: StorageConfig, fake: FakeGraph
) -> None:
    written = {"989121112233": "0912 111 2233", "989124445566": "+98 912 444 5566"}
    written["989127778899"] = "00989127778899"
    async with meta_stack(storage_config, fake) as stack:
        for index, phone in enumerate(written.values()):
            status, _ = await stack.post_form(
                "contact",
                {"name": f"مشتری {index}", "phone": phone, "message": "لطفاً با من تماس بگیرید"},
            )
            assert status in (200, 201, 202)
        await inbound(stack, 3)
        for index, wa_id in enumerate(written):
            await deliver(stack, "wa", whatsapp(wa_text(wa_id, f"wamid.P{index}", "سلام")))
        messages = await inbound(stack, 6)
        async with stack.sessions() as session:
            customers = int(await session.scalar(select(func.count()).select_from(Customer)) or 0)
        assert customers == 3
        by_id = {m.external_id: m for m in messages}
        forms = [m for m in messages if m.channel == "contact"]
        for index, form in enumerate(forms):
            async with stack.sessions() as session:
                mine = await session.get(Conversation, form.conversation_id)
                theirs = await session.get(Conversation, by_id[f"wamid.P{index}"].conversation_id)
            assert mine is not None and theirs is not None
            assert mine.customer_id == theirs.customer_id


async def test_a_failed_media_fetch_keeps_the_message_and_the_file_follows(
    storage_config: StorageConfig, fake: FakeGraph
) -> None:
    fake.media["555"] = ("image/jpeg", b"\xff\xd8 the photo")
    fake.fail("download", 503, 2, times=1)
    async with meta_stack(storage_config, fake) as stack:
        agent = await stack.add_agent("sara@pishkhan.test")
        image = {"id": "555", "mime_type": "image/jpeg", "caption": "رسید پرداخت"}
        delivery = whatsapp(wa_message("989121234567", "wamid.IMG", "image", image))
        assert (await deliver(stack, "wa", delivery))[0] == 200
        [kept] = await inbound(stack, 1)
        assert kept.text.startswith("رسید پرداخت\n[image image_")
        assert "could not be fetched yet; trying again" in kept.text
        _, follow = await inbound(stack, 2)
        assert follow.metadata_["media_for"] == "wamid.IMG"
        assert follow.conversation_id == kept.conversation_id
        status, conversation = await agent.get(f"/api/v1/conversations/{kept.conversation_id}")
        assert status == 200
        shown = {m["id"]: m for m in conversation["messages"]}
        [file] = shown[follow.id]["attachments"]
        async with agent.http.get(agent.base + file["url"]) as response:
            assert response.status == 200
            assert await response.read() == b"\xff\xd8 the photo"


async def test_the_bots_choices_are_buttons_and_a_tap_picks_one(
    storage_config: StorageConfig, fake: FakeGraph, tmp_path: Path
) -> None:
    kb = tmp_path / "faq.yaml"
    kb.write_text(KNOWLEDGE, encoding="utf-8")
    routing = {"routing": {"bot": {"knowledge_base": str(kb), "answer_at": 0.9, "suggest_at": 0.3}}}
    async with meta_stack(storage_config, fake, routing, bot="faq") as stack:
        customer = "989121234567"
        await deliver(
            stack, "wa", whatsapp(wa_text(customer, "wamid.Q", "ارسال سفارش چقدر طول می‌کشد"))
        )

        async def offered() -> list[Any] | None:
            calls = [c for c in fake.sent("messages") if c.body["type"] == "interactive"]
            return calls or None

        [call] = await eventually(offered, timeout=8.0)
        buttons = call.body["interactive"]["action"]["buttons"]
        assert len(buttons) == 2
        question = buttons[1]["reply"]["id"].removeprefix("qr:")
        assert question.startswith("ارسال سفارش به")
        tap = wa_message(
            customer,
            "wamid.TAP",
            "interactive",
            {"type": "button_reply", "button_reply": buttons[1]["reply"]},
        )
        await deliver(stack, "wa", whatsapp(tap))

        async def answered() -> list[Any] | None:
            calls = [c for c in fake.sent("messages") if c.body["type"] == "text"]
            return calls or None

        [answer] = await eventually(answered, timeout=8.0)
        expected = "یک روزه" if "تهران" in question else "دو تا چهار روز"
        assert expected in answer.body["text"]["body"]


async def test_messenger_through_the_pipeline(
    storage_config: StorageConfig, fake: FakeGraph
) -> None:
    fake.profiles["6000000000000009"] = {"name": "Reza Moradi"}
    async with meta_stack(storage_config, fake) as stack:
        agent = await stack.add_agent("sara@pishkhan.test")
        psid = "6000000000000009"
        events = page(
            ms_event(psid, message={"mid": "m_1", "text": "سلام"}),
            ms_event(psid, postback={"title": "شروع", "payload": "GET_STARTED", "mid": "m_2"}),
        )
        assert await deliver(stack, "fb", events) == (200, {"queued": 2})
        await deliver(stack, "fb", events)
        hello, started = await inbound(stack, 2)
        assert started.text == "شروع" and started.metadata_["payload"] == "GET_STARTED"
        _, conversation = await agent.get(f"/api/v1/conversations/{hello.conversation_id}")
        assert conversation["customer"]["name"] == "Reza Moradi"
        await agent.send(
            "POST", f"/api/v1/conversations/{hello.conversation_id}/messages", {"text": "بفرمایید"}
        )
        sent = await reply_of(stack, "sent")
        [call] = fake.sent("me/messages")
        assert call.body["recipient"] == {"id": psid}
        delivered = page(ms_event(psid, delivery={"mids": [sent.provider_id], "watermark": 1}))
        await deliver(stack, "fb", delivered)
        await reply_of(stack, "delivered")
        read = page(ms_event(psid, read={"watermark": 99_999_999_999_999}))
        await deliver(stack, "fb", read)
        await reply_of(stack, "read")
        assert await count_in(stack) == 2
        # A Messenger delivery posted to the WhatsApp channel is skipped, not failed.
        assert await deliver(stack, "wa", events) == (200, {"queued": 0})


async def test_an_instagram_comment_opens_a_conversation_of_the_dm_customer(
    storage_config: StorageConfig, fake: FakeGraph
) -> None:
    async with meta_stack(storage_config, fake) as stack:
        agent = await stack.add_agent("sara@pishkhan.test")
        igsid = "7000000000000001"
        dm = page(
            ms_event(igsid, IG_ACCOUNT_ID, message={"mid": "aWdf1", "text": "سلام"}),
            account=IG_ACCOUNT_ID,
            kind="instagram",
        )
        comment = {
            "object": "instagram",
            "entry": [
                {
                    "id": IG_ACCOUNT_ID,
                    "time": int(time.time() * 1000),
                    "changes": [
                        {
                            "field": "comments",
                            "value": {
                                "from": {"id": igsid, "username": "maryam.shop"},
                                "media": {"id": "18000000000000777"},
                                "id": "17900000000000001",
                                "text": "این رنگ موجود است؟",
                            },
                        }
                    ],
                }
            ],
        }
        assert await deliver(stack, "ig", dm) == (200, {"queued": 1})
        assert await deliver(stack, "ig", comment) == (200, {"queued": 1})
        direct, public = await inbound(stack, 2)
        assert direct.conversation_id != public.conversation_id
        async with stack.sessions() as session:
            one = await session.get(Conversation, direct.conversation_id)
            other = await session.get(Conversation, public.conversation_id)
        assert one is not None and other is not None
        assert one.customer_id == other.customer_id  # the same person, publicly and privately
        status, _ = await agent.send(
            "POST",
            f"/api/v1/conversations/{public.conversation_id}/messages",
            {"text": "بله، موجود است."},
        )
        assert status == 201
        await reply_of(stack, "sent")
        [call] = fake.sent("comment_reply")
        assert call.path == "17900000000000001/replies"
        assert call.body == {"message": "بله، موجود است."}
