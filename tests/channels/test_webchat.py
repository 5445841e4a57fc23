"""The website chat over its WebSocket, against a whole running Pishkhan: hello and resume,
messages stored once across reconnects, history, typing, read, replies and status live."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from channels import webchat
from channels.base import Outbound, Sender
from channels.webchat import WebchatChannel
from routing import visitors
from storage.config import StorageConfig
from storage.models import ContactPoint, Conversation, Message
from tests.fixtures.stack import Stack, eventually, running_stack

ORIGIN = "http://shop.test"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS_OPEN = {"timezone": "UTC", "week": {day: ["00:00-24:00"] for day in DAYS}}


def chat_settings(**channel: Any) -> dict[str, Any]:
    return {
        "channels": [
            {"type": "webchat", "name": "site", "allowed_origins": [ORIGIN], **channel},
        ],
        "routing": {"business_hours": ALWAYS_OPEN},
    }


@asynccontextmanager
async def chat_stack(storage: StorageConfig, **channel: Any) -> AsyncIterator[Stack]:
    async with running_stack(storage, chat_settings(**channel)) as stack:
        yield stack


def ws_url(stack: Stack) -> str:
    return stack.base.replace("http", "ws") + "/channels/webchat/site/ws"


class Visitor:
    """The widget's side of one socket, for tests: sends frames, waits for the one it wants."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))

    async def expect(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:  # noqa: ASYNC109
        for frame in self.seen:
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                self.seen.remove(frame)
                return frame
        async with asyncio.timeout(timeout):
            while True:
                message = await self.ws.receive()
                assert message.type == aiohttp.WSMsgType.TEXT, message
                frame = json.loads(message.data)
                if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame
                self.seen.append(frame)

    async def expect_any(self, kinds: tuple[str, ...], timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The next frame of one of `kinds` (in the order they come)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.ws.receive()
                assert message.type == aiohttp.WSMsgType.TEXT, message
                frame = json.loads(message.data)
                if frame["type"] in kinds:
                    return frame
                self.seen.append(frame)

    async def hello(
        self, token: str | None = None, last_id: int = 0, **extra: Any
    ) -> dict[str, Any]:
        await self.send({"type": "hello", "token": token, "last_id": last_id, **extra})
        return await self.expect("welcome")


@asynccontextmanager
async def visitor(
    stack: Stack, *, origin: str = ORIGIN, token: str | None = None, **extra: Any
) -> AsyncIterator[tuple[Visitor, dict[str, Any]]]:
    async with stack.http.ws_connect(ws_url(stack), headers={"Origin": origin}) as ws:
        chat = Visitor(ws)
        welcome = await chat.hello(token, **extra)
        yield chat, welcome


async def stored(stack: Stack, visitor_id: str) -> list[Message]:
    async with stack.sessions() as session:
        rows = await session.scalars(
            select(Message)
            .where(Message.channel == "site", Message.external_id.startswith(visitor_id + "/"))
            .order_by(Message.id)
        )
        return list(rows.all())


async def conversation_of(stack: Stack, visitor_id: str) -> int:
    async def probe() -> int | None:
        messages = await stored(stack, visitor_id)
        return messages[0].conversation_id if messages else None

    return await eventually(probe)


async def test_a_message_resent_after_a_reconnect_is_stored_once(
    storage_config: StorageConfig,
) -> None:
    async with chat_stack(storage_config) as stack:
        async with visitor(stack) as (chat, welcome):
            assert welcome["token"] and welcome["messages"] == [] and welcome["available"] is False
            await chat.send({"type": "message", "client_id": "c1", "text": "سفارشم نرسیده است"})
            assert (await chat.expect("ack"))["client_id"] == "c1"
        token, visitor_id = welcome["token"], welcome["visitor"]
        async with visitor(stack, token=token) as (chat, again):
            assert again["visitor"] == visitor_id
            # The widget did not see the ack (say) and sends it again, twice.
            for _ in range(2):
                await chat.send({"type": "message", "client_id": "c1", "text": "سفارشم نرسیده است"})
                assert (await chat.expect("ack"))["client_id"] == "c1"
            await chat.send({"type": "message", "client_id": "c2", "text": "کد پیگیری ۱۲۳"})
            await chat.expect("ack", client_id="c2")

        async def both() -> list[Message] | None:
            found = await stored(stack, visitor_id)
            return found if len(found) == 2 else None

        messages = await eventually(both)
        assert [m.text for m in messages] == ["سفارشم نرسیده است", "کد پیگیری ۱۲۳"]
        assert len({m.conversation_id for m in messages}) == 1

        # A page load later: the whole conversation comes back with the widget's client ids.
        async with visitor(stack, token=token) as (_chat, reloaded):
            lines = reloaded["messages"]
            assert [(m["from"], m["client_id"], m["text"]) for m in lines] == [
                ("visitor", "c1", "سفارشم نرسیده است"),
                ("visitor", "c2", "کد پیگیری ۱۲۳"),
            ]
            # Resuming after the newest seen id brings nothing again.
            async with visitor(stack, token=token, last_id=lines[-1]["id"]) as (_c, resumed):
                assert resumed["messages"] == []


async def test_the_agent_reply_status_and_read_reach_the_visitor_live(
    storage_config: StorageConfig,
) -> None:
    async with chat_stack(storage_config) as stack:
        sara = await stack.add_agent("sara@example.com")
        async with visitor(stack, name="مریم", email="Maryam@Example.com") as (chat, welcome):
            assert welcome["available"] is True
            await chat.send({"type": "message", "client_id": "m1", "text": "سلام"})
            await chat.expect("ack", client_id="m1")
            conversation_id = await conversation_of(stack, welcome["visitor"])

            status, _ = await sara.send("POST", f"/api/v1/conversations/{conversation_id}/read")
            assert status == 200
            assert (await chat.expect("read"))["client_id"] == "m1"

            status, _ = await sara.send(
                "POST",
                f"/api/v1/conversations/{conversation_id}/messages",
                {"text": "درود، بررسی می‌کنم"},
            )
            assert status in (200, 201)
            reply = await chat.expect("message")
            assert reply["from"] == "agent" and reply["author"] == "sara"
            assert reply["text"] == "درود، بررسی می‌کنم"

            status, _ = await sara.send(
                "PUT", f"/api/v1/conversations/{conversation_id}/status", {"status": "resolved"}
            )
            assert status == 200
            assert (await chat.expect("status"))["status"] == "resolved"

        # The email given in the widget links the customer, so a reply can follow by email.
        async with stack.sessions() as session:
            customer_id = await session.scalar(
                select(Conversation.customer_id).where(Conversation.id == conversation_id)
            )
            emails = (
                await session.scalars(
                    select(ContactPoint.value).where(ContactPoint.customer_id == customer_id)
                )
            ).all()
        assert emails == ["maryam@example.com"]

        # Later visit: the history shows both sides, and what the agent has read.
        async with visitor(stack, token=welcome["token"]) as (_chat, back):
            assert [m["from"] for m in back["messages"]] == ["visitor", "agent"]
            assert back["messages"][1]["author"] == "sara"
            assert back["read"] == "m1" and back["status"] == "resolved"


async def test_typing_travels_both_ways(storage_config: StorageConfig) -> None:
    async with chat_stack(storage_config) as stack:
        sara = await stack.add_agent("sara@example.com")
        async with visitor(stack) as (chat, welcome):
            await chat.send({"type": "message", "client_id": "t1", "text": "کسی هست؟"})
            await chat.expect("ack")
            conversation_id = await conversation_of(stack, welcome["visitor"])
            events = stack.base.replace("http", "ws") + "/api/v1/events"
            async with sara.http.ws_connect(events) as agent_ws:
                await agent_ws.send_json({"type": "viewing", "conversation_id": conversation_id})
                await agent_ws.send_json({"type": "typing", "conversation_id": conversation_id})
                assert (await chat.expect("typing"))["author"] == "sara"

                await chat.send({"type": "typing"})
                async with asyncio.timeout(5):
                    while True:
                        frame = await agent_ws.receive_json()
                        if frame.get("type") == "customer_typing":
                            break
                assert frame["conversation_id"] == conversation_id


async def test_quick_replies_reach_the_visitor_as_choices(storage_config: StorageConfig) -> None:
    async with chat_stack(storage_config) as stack:
        async with visitor(stack) as (chat, welcome):
            assert stack.runtime.services is not None
            channel = stack.runtime.services.channels["site"]
            assert isinstance(channel, WebchatChannel)
            assert channel.status()["connected_visitors"] == 1
            delivery = await channel.send(
                Outbound(
                    message_id=99,
                    channel="site",
                    recipient=Sender(external_id=welcome["visitor"]),
                    text="کدام را می‌خواهید؟",
                    quick_replies=("پیگیری سفارش", "صحبت با پشتیبان"),
                )
            )
            frame = await chat.expect("message")
            assert frame["from"] == "bot" and frame["quick_replies"] == [
                "پیگیری سفارش",
                "صحبت با پشتیبان",
            ]
            assert delivery.reached is True
        # Nobody connected: the reply still counts as sent (it waits in the history), but did
        # not reach the visitor (so it can follow by email).
        delivery = await channel.send(
            Outbound(
                message_id=100, channel="site", recipient=Sender(external_id="vnobody"), text="x"
            )
        )
        assert delivery.external_id == "" and delivery.reached is False


async def test_availability_follows_agents_and_business_hours(
    storage_config: StorageConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(visitors, "AVAILABILITY_SECONDS", 0.0)
    async with chat_stack(storage_config) as stack:
        async with visitor(stack) as (_chat, welcome):
            assert welcome["available"] is False  # nobody online
        await stack.add_agent("sara@example.com")
        async with visitor(stack) as (_chat, welcome):
            assert welcome["available"] is True
    closed = {"routing": {"business_hours": {"timezone": "UTC", "week": {}}}}
    settings = {**chat_settings(), **closed}
    async with running_stack(storage_config, settings) as stack:
        await stack.add_agent("reza@example.com")
        async with visitor(stack) as (_chat, welcome):
            assert welcome["available"] is False


async def test_a_visitor_is_remembered_after_a_restart(storage_config: StorageConfig) -> None:
    """The signing key is generated once and kept: a token issued before a restart holds."""
    async with chat_stack(storage_config) as stack, visitor(stack) as (chat, welcome):
        await chat.send({"type": "message", "client_id": "r1", "text": "قبل از راه‌اندازی دوباره"})
        await chat.expect("ack")
        await conversation_of(stack, welcome["visitor"])
    async with (
        chat_stack(storage_config) as stack,
        visitor(stack, token=welcome["token"]) as (_chat, back),
    ):
        assert back["visitor"] == welcome["visitor"]
        assert [m["client_id"] for m in back["messages"]] == ["r1"]


async def test_status_counts_visitors(storage_config: StorageConfig) -> None:
    async with chat_stack(storage_config) as stack:
        assert stack.runtime.services is not None
        channel = stack.runtime.services.channels["site"]
        async with visitor(stack), visitor(stack):
            assert channel.status()["connected_visitors"] == 2
        await eventually(lambda: _zero(channel))
        async with stack.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Message)) == 0


async def _zero(channel: Any) -> bool:
    return channel.status()["connections"] == 0


async def test_the_widget_script_carries_the_channel_settings(
    storage_config: StorageConfig,
) -> None:
    async with chat_stack(storage_config, language="fa", ask_contact="required") as stack:
        async with stack.http.get(f"{stack.base}/channels/webchat/site/widget.js") as response:
            assert response.status == 200
            assert response.content_type == "application/javascript"
            script = await response.text()
        settings = json.loads(script.split("var SETTINGS = ", 1)[1].split(";\n", 1)[0])
        assert settings["channel"] == "site" and settings["language"] == "fa"
        assert settings["askContact"] == "required" and settings["maxChars"] == 4000


async def test_a_visitors_other_tabs_see_their_message(storage_config: StorageConfig) -> None:
    async with (
        chat_stack(storage_config) as stack,
        visitor(stack) as (first, welcome),
        visitor(stack, token=welcome["token"]) as (second, _again),
    ):
        await first.send({"type": "message", "client_id": "tab1", "text": "از برگه اول"})
        await first.expect("ack", client_id="tab1")
        mirrored = await second.expect("message")
        assert (mirrored["client_id"], mirrored["from"], mirrored["text"]) == (
            "tab1",
            "visitor",
            "از برگه اول",
        )


async def test_visitors_are_told_when_someone_comes_online(
    storage_config: StorageConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(visitors, "AVAILABILITY_SECONDS", 0.0)
    monkeypatch.setattr(webchat, "AVAILABILITY_TICKS", 1)
    monkeypatch.setattr(webchat, "READ_POLL_SECONDS", 0.1)
    async with chat_stack(storage_config) as stack, visitor(stack) as (chat, welcome):
        assert welcome["available"] is False
        await stack.add_agent("sara@example.com")
        assert (await chat.expect("availability"))["available"] is True
