"""What an agent does through the API: reply, note, assign, transfer, status, labels — each an
event, each recorded — and replies leaving through the customer's channel."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from storage.config import StorageConfig
from tests.fixtures.stack import Agent, Stack, eventually, running_stack

SECRET = "crm-shared-secret-0123456789"


async def first_conversation(agent: Agent) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        _, listing = await agent.get("/api/v1/conversations")
        return listing["conversations"][0] if listing["conversations"] else None

    return await eventually(probe)


async def test_reply_note_assign_transfer_status_and_labels(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    sara = await stack.add_agent("sara@example.com", online=False)
    await stack.post_form(
        "contact", {"email": "reza@example.com", "message": "کالای خریداری‌شده معیوب است"}
    )
    conversation = await first_conversation(ali)
    path = f"/api/v1/conversations/{conversation['id']}"
    assert conversation["assignee_id"] == ali.id

    status, note = await ali.send(
        "POST", path + "/messages", {"text": "@sara لطفاً پیگیری کن", "private": True}
    )
    assert status == 201 and note["private"] and note["delivery_status"] is None
    status, reply = await ali.send("POST", path + "/messages", {"text": "در حال بررسی است"})
    assert status == 201 and reply["delivery_status"] == "queued"
    status, moved = await ali.send("POST", path + "/assignment", {"agent_id": sara.id})
    assert status == 200 and moved["assignee_id"] == sara.id
    status, snoozed = await sara.send(
        "PUT", path + "/status", {"status": "snoozed", "snoozed_until": "2099-01-01T08:00:00+03:30"}
    )
    assert status == 200 and snoozed["status"] == "snoozed"
    status, labels = await sara.send(
        "POST", path + "/labels", {"add": ["گارانتی", "vip"], "remove": []}
    )
    assert labels == {"labels": ["vip", "گارانتی"]}
    status, labels = await sara.send("POST", path + "/labels", {"remove": ["vip"]})
    assert labels == {"labels": ["گارانتی"]}
    status, resolved = await sara.send("PUT", path + "/status", {"status": "resolved"})
    assert resolved["status"] == "resolved"

    _, detail = await sara.get(path)
    assert [m["author_kind"] for m in detail["messages"]] == ["customer", "agent", "agent"]
    assert detail["labels"] == ["گارانتی"]
    assert detail["customer"]["responsible_agent"] == {"id": ali.id, "name": "ali"}
    _, log = await sara.get(path + "/events")
    log["events"] = [  # deliveries are async; notifications are tested in test_inbox_api
        e for e in log["events"] if e["type"] not in ("message.delivery", "notification.created")
    ]
    assert [e["type"] for e in log["events"]] == [
        "conversation.created",
        "message.created",
        "conversation.assigned",
        "note.created",
        "message.created",
        "conversation.assigned",
        "conversation.status_changed",
        "conversation.labels_changed",
        "conversation.labels_changed",
        "conversation.status_changed",
    ]
    transfer = log["events"][5]
    assert transfer["actor_agent_id"] == ali.id
    assert transfer["data"]["from"] == ali.id and transfer["data"]["to"] == sara.id


async def test_web_form_replies_show_as_not_deliverable_until_email_exists(
    stack: Stack,
) -> None:
    ali = await stack.add_agent("ali@example.com")
    await stack.post_form("contact", {"email": "reza@example.com", "message": "سلام"})
    conversation = await first_conversation(ali)
    path = f"/api/v1/conversations/{conversation['id']}"
    _, reply = await ali.send("POST", path + "/messages", {"text": "پاسخ ما"})

    async def failed() -> dict[str, Any] | None:
        _, detail = await ali.get(path)
        message = next(m for m in detail["messages"] if m["id"] == reply["id"])
        return message if message["delivery_status"] == "failed" else None

    message = await eventually(failed)
    assert "email" in message["delivery_error"]
    status, _ = await ali.send("POST", f"/api/v1/messages/{reply['id']}/retry")
    assert status == 200  # retrying is allowed, and fails visibly again
    await eventually(failed)


async def test_transfer_to_a_team_and_the_events_stream_filters_by_team(
    storage_config: StorageConfig,
) -> None:
    extra = {
        "routing": {"teams": [{"name": "sales"}, {"name": "support"}]},
        "channels": [{"type": "webform", "name": "contact", "team": "support"}],
    }
    async with running_stack(storage_config, extra) as stack:
        admin = await stack.add_agent("boss@example.com", role="admin", online=False)
        outsider = await stack.add_agent("out@example.com", online=False)  # in no team
        await stack.post_form("contact", {"email": "reza@example.com", "message": "سلام"})
        conversation = await first_conversation(admin)
        assert conversation["team_id"] is not None
        _, listing = await outsider.get("/api/v1/conversations")
        assert listing["conversations"] == []  # not their team, not theirs
        status, _ = await outsider.get(f"/api/v1/conversations/{conversation['id']}")
        assert status == 404
        _, teams = await admin.get("/api/v1/teams")
        sales = next(t["id"] for t in teams["teams"] if t["name"] == "sales")
        status, moved = await admin.send(
            "POST",
            f"/api/v1/conversations/{conversation['id']}/assignment",
            {"agent_id": None, "team_id": sales, "set_team": True},
        )
        assert status == 200 and moved["team_id"] == sales


async def test_events_replay_what_a_reconnecting_agent_missed(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    ws_url = stack.base.replace("http", "ws") + "/api/v1/events"
    async with ali.http.ws_connect(ws_url) as ws:
        await stack.post_form("contact", {"email": "a@example.com", "message": "یک"})
        first = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
    await stack.post_form("contact", {"email": "b@example.com", "message": "دو"})
    await first_conversation(ali)
    await asyncio.sleep(0.3)
    async with ali.http.ws_connect(ws_url + f"?since={first['id']}") as ws:
        replayed = []
        while not any(
            e["type"] == "message.created" and e["data"]["message"]["text"] == "دو"
            for e in replayed
        ):
            replayed.append(json.loads((await asyncio.wait_for(ws.receive(), 5)).data))
    assert all(e["id"] > first["id"] for e in replayed)
    assert all(e["replayed"] for e in replayed)


async def test_events_refuse_anonymous_and_cross_site_connections(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    ws_url = stack.base.replace("http", "ws") + "/api/v1/events"
    with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
        async with stack.http.ws_connect(ws_url):
            pass
    assert anonymous.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
        async with ali.http.ws_connect(ws_url, origin="https://evil.example"):
            pass
    assert foreign.value.status == 403


@pytest.fixture
async def callback_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
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
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/replies", received
    await runner.cleanup()


async def test_api_channel_message_in_and_signed_reply_out(
    storage_config: StorageConfig,
    callback_server: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = callback_server
    monkeypatch.setenv("PISHKHAN_TEST_CRM_SECRET", SECRET)
    extra = {
        "channels": [
            {
                "type": "api",
                "name": "crm",
                "secret": "${PISHKHAN_TEST_CRM_SECRET}",
                "callback_url": url,
            }
        ]
    }
    async with running_stack(storage_config, extra) as stack:
        ali = await stack.add_agent("ali@example.com")
        body = json.dumps(
            {
                "id": "crm-1",
                "sender": {"id": "cust-9", "name": "نگار", "email": "negar@example.com"},
                "text": "مشتری از طریق CRM پیام داده",
                "thread_id": "case-77",
            },
            ensure_ascii=False,
        ).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        async with stack.http.post(
            stack.base + "/channels/api/crm/messages",
            data=body,
            headers={"X-Pishkhan-Signature": signature, "Content-Type": "application/json"},
        ) as response:
            assert response.status == 202
        conversation = await first_conversation(ali)
        path = f"/api/v1/conversations/{conversation['id']}"
        await ali.send("POST", path + "/messages", {"text": "پاسخ کارشناس"})
        await eventually(lambda: asyncio.sleep(0, received))
        assert received[0]["text"] == "پاسخ کارشناس"
        assert received[0]["thread_id"] == "case-77"
        assert received[0]["recipient"]["id"] == "cust-9"

        async def sent() -> bool:
            _, detail = await ali.get(path)
            return detail["messages"][-1]["delivery_status"] == "sent"

        await eventually(sent)
        assert len(received) == 1

        # The client's own ids live apart from ours: an id that looks like a delivered reply's
        # is still the customer's new message.
        _, detail = await ali.get(path)
        reply_id = detail["messages"][-1]["id"]
        body = json.dumps(
            {"id": f"out:{reply_id}", "sender": {"id": "cust-9"}, "text": "ممنون"}
        ).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        async with stack.http.post(
            stack.base + "/channels/api/crm/messages",
            data=body,
            headers={"X-Pishkhan-Signature": signature, "Content-Type": "application/json"},
        ) as response:
            assert response.status == 202

        async def thanked() -> bool:
            _, detail = await ali.get(path)
            return detail["messages"][-1]["text"] == "ممنون"

        await eventually(thanked)
        assert len(received) == 1


async def test_an_agent_sees_only_customers_of_conversations_they_can_see(
    storage_config: StorageConfig,
) -> None:
    extra = {
        "routing": {"teams": [{"name": "sales", "members": ["sam@example.com"]}]},
        "channels": [{"type": "webform", "name": "contact", "team": "sales"}],
    }
    async with running_stack(storage_config, extra) as stack:
        admin = await stack.add_agent("boss@example.com", role="admin", online=False)
        outsider = await stack.add_agent("out@example.com", online=False)
        await stack.post_form("contact", {"email": "reza@example.com", "message": "سلام"})
        conversation = await first_conversation(admin)
        customer = conversation["customer"]["id"]
        status, profile = await admin.get(f"/api/v1/customers/{customer}")
        assert status == 200 and profile["emails"] == ["reza@example.com"]
        status, _ = await outsider.get(f"/api/v1/customers/{customer}")
        assert status == 404
