"""Who gets which realtime message: notifications only to their agent, customer events only to
who can see the customer, live and on replay; events say who made the change; the collision
signals (viewing, typing) reach the agents who can see the conversation, and a client's bad
messages are ignored or end its stream, never the server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from inbox import realtime
from storage.config import StorageConfig
from tests.fixtures.stack import Agent, Stack, eventually, running_stack

Socket = aiohttp.ClientWebSocketResponse


def events_url(stack: Stack, since: int | None = None) -> str:
    url = stack.base.replace("http", "ws") + "/api/v1/events"
    return url if since is None else f"{url}?since={since}"


async def receive(ws: Socket, timeout: float = 5) -> dict[str, Any]:  # noqa: ASYNC109
    message = await asyncio.wait_for(ws.receive(), timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data)
    data: dict[str, Any] = json.loads(message.data)
    return data


async def until(ws: Socket, kind: str, **fields: Any) -> dict[str, Any]:
    """The next message of that type (and those field values), skipping the others."""
    while True:
        message = await receive(ws)
        if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
            return message


async def drain(ws: Socket, seconds: float = 0.4) -> list[dict[str, Any]]:
    """Everything that arrives within `seconds`."""
    got = []
    while True:
        try:
            message = await asyncio.wait_for(ws.receive(), seconds)
        except TimeoutError:
            return got
        if message.type != aiohttp.WSMsgType.TEXT:
            return got
        got.append(json.loads(message.data))


async def replayed(agent: Agent, stack: Stack) -> list[dict[str, Any]]:
    async with agent.http.ws_connect(events_url(stack, since=0)) as ws:
        return await drain(ws)


async def a_conversation(stack: Stack, agent: Agent, email: str = "maryam@example.com") -> int:
    await stack.post_form("contact", {"name": "مریم", "email": email, "message": "سلام، سفارشم؟"})

    async def probe() -> int | None:
        _, body = await agent.get("/api/v1/conversations")
        items = [c for c in body["conversations"] if c["customer"]["name"] == "مریم"]
        return items[0]["id"] if items else None

    return await eventually(probe)


def names(people: list[dict[str, Any]]) -> list[str]:
    return [p["name"] for p in people]


async def test_a_notification_reaches_only_its_agent_live_and_on_replay(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    sara = await stack.add_agent("sara@example.com")
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    conversation_id = await a_conversation(stack, ali)
    async with (
        ali.http.ws_connect(events_url(stack)) as ali_ws,
        sara.http.ws_connect(events_url(stack)) as sara_ws,
        boss.http.ws_connect(events_url(stack)) as boss_ws,
    ):
        status, _ = await sara.send(
            "POST",
            f"/api/v1/conversations/{conversation_id}/messages",
            {"text": "@ali لطفاً ببین", "private": True},
        )
        assert status == 201
        note = await until(ali_ws, "notification.created")
        assert note["data"]["agent_id"] == ali.id and note["actor_agent_id"] == sara.id
        assert note["data"]["notification"]["actor"]["name"] == "sara"
        created = await until(boss_ws, "note.created")
        assert created["actor_agent_id"] == sara.id  # events say who made the change
        assert [m["type"] for m in await drain(boss_ws)] == []
        assert "notification.created" not in [m["type"] for m in await drain(sara_ws)]

    assert "notification.created" in [e["type"] for e in await replayed(ali, stack)]
    for other in (sara, boss):
        assert "notification.created" not in [e["type"] for e in await replayed(other, stack)]


async def test_customer_events_reach_only_who_can_see_the_customer(
    storage_config: StorageConfig,
) -> None:
    extra = {
        "routing": {"teams": [{"name": "support", "members": ["sup@example.com"]}]},
        "channels": [{"type": "webform", "name": "contact", "team": "support"}],
    }
    async with running_stack(storage_config, extra) as stack:
        boss = await stack.add_agent("boss@example.com", role="admin", online=False)
        member = await stack.add_agent("sup@example.com", online=False)
        outsider = await stack.add_agent("out@example.com", online=False)
        # sup@ was added after the team was synced: an admin puts them in it.
        _, teams = await boss.get("/api/v1/teams")
        support = teams["teams"][0]["id"]
        status, _ = await boss.send("PATCH", f"/api/v1/agents/{member.id}", {"team_ids": [support]})
        assert status == 200
        conversation_id = await a_conversation(stack, boss)
        _, detail = await boss.get(f"/api/v1/conversations/{conversation_id}")
        customer_id = detail["customer"]["id"]
        async with (
            member.http.ws_connect(events_url(stack)) as member_ws,
            outsider.http.ws_connect(events_url(stack)) as outsider_ws,
        ):
            status, _ = await boss.send(
                "PATCH", f"/api/v1/customers/{customer_id}", {"name": "مریم کاظمی"}
            )
            assert status == 200
            status, _ = await boss.send("POST", "/api/v1/labels", {"name": "vip"})
            assert status == 201
            event = await until(member_ws, "customer.updated")
            assert event["customer_id"] == customer_id and event["actor_agent_id"] == boss.id
            assert (await until(member_ws, "label.created"))["data"]["label"]["name"] == "vip"
            # the outsider gets the label (no customer data), never the customer's change
            assert (await until(outsider_ws, "label.created"))["actor_agent_id"] == boss.id
            assert "customer.updated" not in [m["type"] for m in await drain(outsider_ws)]

        assert "customer.updated" in [e["type"] for e in await replayed(member, stack)]
        assert "customer.updated" not in [e["type"] for e in await replayed(outsider, stack)]


async def test_viewing_and_typing_reach_the_others_who_can_see_it(
    storage_config: StorageConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realtime, "TYPING_SECONDS", 0.3)
    extra = {
        "routing": {"teams": [{"name": "support", "members": ["ali@example.com"]}]},
        "channels": [{"type": "webform", "name": "contact", "team": "support"}],
    }
    async with running_stack(storage_config, extra) as stack:
        ali = await stack.add_agent("ali@example.com")
        boss = await stack.add_agent("boss@example.com", role="admin", online=False)
        outsider = await stack.add_agent("out@example.com", online=False)
        _, teams = await boss.get("/api/v1/teams")
        status, _ = await boss.send(
            "PATCH", f"/api/v1/agents/{ali.id}", {"team_ids": [teams["teams"][0]["id"]]}
        )
        assert status == 200
        conversation_id = await a_conversation(stack, ali)
        async with (
            ali.http.ws_connect(events_url(stack)) as ali_ws,
            boss.http.ws_connect(events_url(stack)) as boss_ws,
            outsider.http.ws_connect(events_url(stack)) as outsider_ws,
        ):
            await ali_ws.send_json({"type": "viewing", "conversation_id": conversation_id})
            own = await until(ali_ws, "collision")  # the newcomer gets the current state
            assert (names(own["viewing"]), own["typing"]) == (["ali"], [])
            seen = await until(boss_ws, "collision")
            assert seen["conversation_id"] == conversation_id
            assert (names(seen["viewing"]), seen["typing"]) == (["ali"], [])

            await boss_ws.send_json({"type": "viewing", "conversation_id": conversation_id})
            both = await until(boss_ws, "collision")
            assert names(both["viewing"]) == ["ali", "boss"]
            assert names((await until(ali_ws, "collision"))["viewing"]) == ["ali", "boss"]

            await ali_ws.send_json({"type": "typing", "conversation_id": conversation_id})
            typing = await until(boss_ws, "collision")
            assert [p["id"] for p in typing["typing"]] == [ali.id]
            stopped = await until(boss_ws, "collision")  # no new signal within TYPING_SECONDS
            assert stopped["typing"] == [] and names(stopped["viewing"]) == ["ali", "boss"]

            # The outsider cannot see the conversation: told nothing, and cannot join it.
            await outsider_ws.send_json({"type": "viewing", "conversation_id": conversation_id})
            assert [m for m in await drain(outsider_ws) if m["type"] == "collision"] == []
            assert [m for m in await drain(boss_ws) if m["type"] == "collision"] == []

            await ali_ws.close()  # viewing ends with the socket
            left = await until(boss_ws, "collision")
            assert (names(left["viewing"]), left["typing"]) == (["boss"], [])
            await boss_ws.send_json({"type": "viewing", "conversation_id": None})
            assert stack.runtime.services is not None
            hub = stack.runtime.services.hub
            assert await eventually(lambda: _async(hub.collision(conversation_id) is None))


async def _async(value: bool) -> bool:
    return value


async def test_bad_client_messages_are_ignored_and_floods_and_huge_frames_end_the_stream(
    stack: Stack,
) -> None:
    ali = await stack.add_agent("ali@example.com")
    conversation_id = await a_conversation(stack, ali)
    async with ali.http.ws_connect(events_url(stack)) as ws:
        for junk in (
            "not json",
            "[1, 2]",
            '{"type": "dance"}',
            '{"type": "viewing", "conversation_id": "1"}',
            '{"type": "viewing", "conversation_id": true}',
            '{"type": "viewing", "conversation_id": 99999999999999999999999}',
            '{"type": "typing", "conversation_id": null}',
            '{"type": "typing", "conversation_id": 999999}',
            '{"type": "viewing", "conversation_id": 999999}',
        ):
            await ws.send_str(junk)
        await ws.send_bytes(b"\x00\x01")
        await ws.send_str("ping")
        assert (await asyncio.wait_for(ws.receive(), 5)).data == "pong"
        await ws.send_json({"type": "viewing", "conversation_id": conversation_id})
        assert names((await until(ws, "collision"))["viewing"]) == ["ali"]

    async with ali.http.ws_connect(events_url(stack)) as ws:
        await ws.send_str('{"type": "typing", "conversation_id": 1, "pad": "' + "x" * 10_000 + '"}')
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1009

    async with ali.http.ws_connect(events_url(stack)) as ws:
        for _ in range(400):
            await ws.send_str('{"type": "typing", "conversation_id": 1}')
        while (message := await asyncio.wait_for(ws.receive(), 5)).type == aiohttp.WSMsgType.TEXT:
            pass
        assert (message.type, message.data, message.extra) == (
            aiohttp.WSMsgType.CLOSE,
            1008,
            "too many messages",
        )

    # The server is fine: a fresh stream still gets events.
    async with ali.http.ws_connect(events_url(stack)) as ws:
        await stack.post_form("contact", {"email": "reza@example.com", "message": "هنوز هستی؟"})
        await until(ws, "conversation.created")
