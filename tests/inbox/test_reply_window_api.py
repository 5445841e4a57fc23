"""The reply window through the API, on SQLite and PostgreSQL: the conversation shows when its
window closes; after it, a free-text reply is a 409 that says why, a note still goes in, and
the agent lists and sends the channel's approved templates, which reach the channel."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from channels.base import Inbound, Sender, TemplateMessage
from routing.router import INBOUND_TOPIC
from tests.fixtures.stack import Agent, Stack, eventually
from tests.fixtures.window_channel import WindowChannel

_people = itertools.count(1)


def with_window_channel(stack: Stack) -> WindowChannel:
    """Add the test channel beside the configured ones: the actions and the deliverer read the
    same mapping, so replies to its conversations go through it."""
    assert stack.runtime.services is not None
    channel = WindowChannel("wa")
    stack.runtime.services.channels["wa"] = channel  # type: ignore[index]
    return channel


async def customer_writes(stack: Stack, agent: Agent, *, ago: timedelta) -> dict[str, Any]:
    """A WhatsApp-like message the customer sent `ago`; returns its conversation's detail."""
    assert stack.runtime.services is not None
    person = next(_people)
    inbound = Inbound(
        channel="wa",
        external_id=f"wamid.{person}",
        sender=Sender(external_id=f"98912000{person:04}", name=f"مشتری {person}"),
        text="سلام، سفارش من کی می‌رسد؟",
        thread_id=f"98912000{person:04}",
        received_at=datetime.now(UTC) - ago,
    )
    await stack.runtime.services.queue.publish(INBOUND_TOPIC, inbound.order_key, inbound.to_json())

    async def probe() -> dict[str, Any] | None:
        _, listing = await agent.get("/api/v1/conversations?channel=wa&status=open")
        for item in listing["conversations"]:
            if item["customer"]["name"] == inbound.sender.name:
                return item
        return None

    found = await eventually(probe)
    status, detail = await agent.get(f"/api/v1/conversations/{found['id']}")
    assert status == 200
    return dict(detail)


async def test_within_the_window_the_conversation_shows_when_it_closes_and_replies_go_out(
    stack: Stack,
) -> None:
    channel = with_window_channel(stack)
    ali = await stack.add_agent("ali@example.com")
    detail = await customer_writes(stack, ali, ago=timedelta(hours=3))

    window = detail["reply_window"]
    assert window["open"] is True
    closes_at = datetime.fromisoformat(window["closes_at"])
    expected = datetime.now(UTC) + timedelta(hours=21)
    assert abs((closes_at - expected).total_seconds()) < 60

    status, reply = await ali.send(
        "POST", f"/api/v1/conversations/{detail['id']}/messages", {"text": "فردا می‌رسد"}
    )
    assert status == 201, reply
    await eventually(lambda: _sent(channel))
    assert [(o.text, o.template) for o in channel.sent] == [("فردا می‌رسد", None)]


async def _sent(channel: WindowChannel) -> bool:
    return bool(channel.sent)


async def test_after_the_window_free_text_is_refused_a_note_goes_in_and_a_template_goes_out(
    stack: Stack,
) -> None:
    channel = with_window_channel(stack)
    ali = await stack.add_agent("ali@example.com")
    detail = await customer_writes(stack, ali, ago=timedelta(hours=25))
    path = f"/api/v1/conversations/{detail['id']}"
    assert detail["reply_window"]["open"] is False
    closed_at = detail["reply_window"]["closes_at"]

    status, refused = await ali.send("POST", path + "/messages", {"text": "فردا می‌رسد"})
    assert status == 409
    assert closed_at in refused["error"] and "template" in refused["error"]
    assert refused["reply_window"] == {"closes_at": closed_at, "open": False}

    status, note = await ali.send(
        "POST", path + "/messages", {"text": "پنجره بسته است", "private": True}
    )
    assert status == 201 and note["private"]

    status, listed = await ali.get(path + "/templates")
    assert status == 200
    assert [t["name"] for t in listed["templates"]] == ["order_update", "follow_up"]
    assert listed["templates"][0] == {
        "name": "order_update",
        "language": "fa",
        "parameters": ["order", "date"],
        "text": "سفارش {{1}} شما در تاریخ {{2}} ارسال می‌شود.",
    }
    assert listed["reply_window"]["open"] is False

    status, sent = await ali.send(
        "POST", path + "/templates", {"name": "order_update", "parameters": ["۱۲۳۴", "دوشنبه"]}
    )
    assert status == 201, sent
    assert sent["text"] == "[template: order_update] سفارش ۱۲۳۴ شما در تاریخ دوشنبه ارسال می‌شود."
    assert sent["metadata"]["template"]["name"] == "order_update"
    await eventually(lambda: _sent(channel))
    assert channel.sent[0].template == TemplateMessage("order_update", "fa", ("۱۲۳۴", "دوشنبه"))

    _, after = await ali.get(path)
    texts = [(m["text"], m["private"], m["delivery_status"]) for m in after["messages"][1:]]
    assert texts == [("پنجره بسته است", True, None), (sent["text"], False, "sent")]
    assert after["messages"][2]["metadata"]["template"]["parameters"] == ["۱۲۳۴", "دوشنبه"]


async def test_bad_template_requests_get_a_clear_4xx_and_nothing_is_sent(stack: Stack) -> None:
    channel = with_window_channel(stack)
    ali = await stack.add_agent("ali@example.com")
    detail = await customer_writes(stack, ali, ago=timedelta(days=2))
    path = f"/api/v1/conversations/{detail['id']}/templates"

    cases: list[tuple[Any, int, str]] = [
        ({"name": "nope", "parameters": []}, 422, "no template 'nope'"),
        ({"name": "order_update", "parameters": ["1"]}, 422, "takes 2 (order, date), not 1"),
        ({"name": "order_update", "parameters": ["1", ""]}, 422, "parameters[2]: empty"),
        ({"name": "order_update", "parameters": ["1", 2]}, 422, "parameters.1"),
        ({"name": "order_update", "parameters": "1,2"}, 422, "parameters"),
        ({"parameters": []}, 422, "name"),
        ({"name": "", "parameters": []}, 422, "name"),
        ({"name": "follow_up", "extra": 1}, 422, "extra"),
        ({"name": "follow_up", "parameters": ["a\x00"]}, 422, "NUL"),
        ([], 422, "body"),
    ]
    for body, expected, reason in cases:
        status, answer = await ali.send("POST", path, body)
        assert (status, reason in answer["error"]) == (expected, True), (body, answer)

    async with ali.http.post(
        ali.base + path,
        data=b"{not json",
        headers={"X-CSRF-Token": ali.csrf, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
    async with ali.http.post(ali.base + path, json={"name": "follow_up"}) as response:
        assert response.status == 403  # no CSRF token
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.post(ali.base + path, json={"name": "follow_up"}) as response:
            assert response.status == 401
        async with anonymous.get(ali.base + path) as response:
            assert response.status == 401
    status, _ = await ali.send("POST", "/api/v1/conversations/999999/templates", {"name": "x"})
    assert status == 404
    status, _ = await ali.get("/api/v1/conversations/999999/templates")
    assert status == 404

    _, after = await ali.get(f"/api/v1/conversations/{detail['id']}")
    assert [m["direction"] for m in after["messages"]] == ["in"]
    assert channel.sent == []


async def test_a_channel_without_a_window_shows_it_open_and_has_no_templates(
    stack: Stack,
) -> None:
    ali = await stack.add_agent("ali@example.com")
    await stack.post_form("contact", {"email": "reza@example.com", "message": "سلام"})

    async def probe() -> list[dict[str, Any]] | None:
        _, listing = await ali.get("/api/v1/conversations")
        return listing["conversations"] or None

    [conversation] = await eventually(probe)
    path = f"/api/v1/conversations/{conversation['id']}"
    _, detail = await ali.get(path)

    assert detail["reply_window"] == {"closes_at": None, "open": True}
    status, listed = await ali.get(path + "/templates")
    assert (status, listed["templates"]) == (200, [])
    status, refused = await ali.send("POST", path + "/templates", {"name": "order_update"})
    assert status == 422 and "has no templates" in refused["error"]


async def test_the_openapi_document_describes_the_template_routes(stack: Stack) -> None:
    status, document = await (await stack.add_agent("ali@example.com")).get("/api/v1/openapi.json")
    assert status == 200
    operations = document["paths"]["/api/v1/conversations/{id}/templates"]
    assert set(operations) >= {"get", "post"}
    assert "409" in document["paths"]["/api/v1/conversations/{id}/messages"]["post"]["responses"]
