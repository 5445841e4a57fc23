"""Unread counts come from each conversation's newest customer message
(`last_inbound_message_id`, set by the router) and the agent's read marker: they stay right as
customers write, agents reply and read, and the two agree with counting the messages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from storage.models import Conversation, Message
from tests.fixtures.stack import Agent, Stack, eventually


async def listing(agent: Agent, query: str = "") -> dict[str, Any]:
    status, body = await agent.get("/api/v1/conversations" + query)
    assert status == 200, body
    return dict(body)


async def newest_inbound(stack: Stack) -> dict[int, tuple[int | None, int | None]]:
    """Per conversation: (the stored field, the newest customer message counted from messages)."""
    async with stack.sessions() as session:
        newest = (
            select(func.max(Message.id))
            .where(Message.conversation_id == Conversation.id, Message.direction == "in")
            .scalar_subquery()
        )
        rows = await session.execute(
            select(Conversation.id, Conversation.last_inbound_message_id, newest)
        )
        return {cid: (stored, counted) for cid, stored, counted in rows.all()}


async def test_unread_counts_follow_messages_replies_and_reads(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        await stack.post_form("contact", {"email": email, "message": "سفارشم نرسیده است"})

    async def three() -> dict[str, Any] | None:
        body = await listing(ali)
        return body if len(body["conversations"]) == 3 else None

    body = await eventually(three)
    assert body["counts"] == {"mine": 3, "unassigned": 0, "teams": 0, "all": 3}
    assert (await listing(boss))["counts"] == {"mine": 0, "unassigned": 0, "teams": 0, "all": 3}
    stored = await newest_inbound(stack)
    assert all(field == counted and field is not None for field, counted in stored.values())

    first, second, _ = body["conversations"]
    await ali.send("POST", f"/api/v1/conversations/{first['id']}/read")
    # Replying marks read for the author and is not a customer message: nothing turns unread.
    status, _ = await ali.send(
        "POST", f"/api/v1/conversations/{second['id']}/messages", {"text": "بررسی می‌کنیم"}
    )
    assert status == 201
    assert (await listing(ali))["counts"] == {"mine": 1, "unassigned": 0, "teams": 0, "all": 1}
    assert (await listing(boss))["counts"]["all"] == 3  # read markers are per agent

    # The customer of the first writes again: unread again, for ali only until ali reads.
    await stack.post_form("contact", {"email": "c@example.com", "message": "هنوز خبری نیست"})

    async def unread_again() -> dict[str, Any] | None:
        body = await listing(ali)
        return body if body["counts"]["mine"] == 2 else None

    body = await eventually(unread_again)
    assert {c["id"]: c["unread"] for c in body["conversations"]} == {
        first["id"]: 1,
        second["id"]: 0,
        body["conversations"][-1]["id"]: 1,
    }
    stored = await newest_inbound(stack)
    assert all(field == counted for field, counted in stored.values())

    # Resolved conversations are not counted, whatever is unread in them.
    await ali.send("PUT", f"/api/v1/conversations/{first['id']}/status", {"status": "resolved"})
    assert (await listing(ali))["counts"]["mine"] == 1
    assert (await listing(boss))["counts"]["all"] == 2
