"""The pipeline end to end, as an agent sees it through the API and the event stream."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.fixtures.stack import Stack, eventually

ARTICLE = (
    "سلام، سفارشم هنوز نرسیده. در مقاله‌ی «خدمات پس از فروش» خواندم که پیگیری سفارش "
    "از طریق تمام نقاط تماس ممکن است؛ لطفاً وضعیت را بگویید."
)


async def test_web_form_message_reaches_the_online_agent_live(stack: Stack) -> None:
    maryam = await stack.add_agent("maryam@example.com")
    async with maryam.http.ws_connect(stack.base.replace("http", "ws") + "/api/v1/events") as ws:
        status, body = await stack.post_form(
            "contact",
            {
                "name": "رضا رضایی",
                "email": "Reza@Example.com",
                "phone": "۰۹۱۲۱۲۳۴۵۶۷",
                "subject": "پیگیری سفارش",
                "message": ARTICLE,
            },
        )
        assert status == 202, body
        seen: list[str] = []
        while "conversation.assigned" not in seen:
            message = await asyncio.wait_for(ws.receive(), timeout=5)
            assert message.type == aiohttp.WSMsgType.TEXT
            seen.append(json.loads(message.data)["type"])
    assert seen[:2] == ["conversation.created", "message.created"]

    status, listing = await maryam.get("/api/v1/conversations?assignee=me")
    assert status == 200
    [conversation] = listing["conversations"]
    assert conversation["customer"]["name"] == "رضا رضایی"
    assert conversation["assignee_id"] == maryam.id
    status, detail = await maryam.get(f"/api/v1/conversations/{conversation['id']}")
    assert detail["messages"][0]["text"] == ARTICLE
    assert detail["customer"]["emails"] == ["reza@example.com"]
    assert detail["customer"]["phones"] == ["+989121234567"]


async def test_same_email_on_a_later_form_is_the_same_customer(stack: Stack) -> None:
    agent = await stack.add_agent("ali@example.com")
    for text in ("اولین پیام", "دومین پیام"):
        status, _ = await stack.post_form("contact", {"email": "sara@example.com", "message": text})
        assert status == 202

    async def two_messages() -> dict | None:
        _, listing = await agent.get("/api/v1/conversations")
        if len(listing["conversations"]) != 1:
            return None
        _, detail = await agent.get(f"/api/v1/conversations/{listing['conversations'][0]['id']}")
        return detail if len(detail["messages"]) == 2 else None

    detail = await eventually(two_messages)
    assert [m["text"] for m in detail["messages"]] == ["اولین پیام", "دومین پیام"]
    assert detail["customer"]["conversation_count"] == 1
