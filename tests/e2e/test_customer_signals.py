"""What the inbox shows of the customer's side live: typing, and a reply that also went by email."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from channels.base import Inbound, Sender
from storage.models import Conversation, Message
from tests.e2e.conftest import Team
from tests.e2e.test_inbox import login, open_conversation

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_agent_sees_the_customer_typing_and_a_reply_that_followed_by_email(
    browser: Any, pishkhan: Team
) -> None:
    ali = await pishkhan.agent("ali@example.com", "علی رضایی")
    status, _ = await pishkhan.stack.post_form(
        "contact", {"name": "نگار", "email": "negar@example.com", "message": "سلام، فاکتورم کجاست؟"}
    )
    assert status in (200, 201, 202, 303)
    page = await login(browser, pishkhan.base, "ali@example.com")
    await open_conversation(page, "نگار")
    async with pishkhan.stack.sessions() as session:
        conversation = (await session.scalars(select(Conversation))).one()

    hub = pishkhan.stack.runtime.services.hub  # type: ignore[union-attr]
    hub.tell(
        conversation.id,
        {"type": "customer_typing"},
        team_id=conversation.team_id,
        assignee_id=conversation.assignee_id,
    )
    typing = page.locator(".collision .customer-typing")
    await typing.wait_for()
    assert "در حال نوشتن" in (await typing.inner_text())
    await typing.wait_for(state="detached", timeout=10_000)  # it fades when not renewed

    # A reply the visitor missed, which the web chat also emailed, says so in the thread.
    status, reply = await ali.send(
        "POST", f"/api/v1/conversations/{conversation.id}/messages", {"text": "فاکتور ارسال شد."}
    )
    assert status == 201
    async with pishkhan.stack.sessions.begin() as session:
        message = await session.get(Message, reply["id"])
        assert message is not None
        message.metadata_ = {**message.metadata_, "followed_by_email": True}
    await page.reload()
    await open_conversation(page, "نگار")
    await page.locator(".msg-out .followed-tag", has_text="با ایمیل هم رفت").wait_for()

    # A reaction (as WhatsApp and Messenger send them) is drawn on the message it reacts to.
    async with pishkhan.stack.sessions() as session:
        first = (await session.scalars(select(Message).where(Message.direction == "in"))).first()
        assert first is not None and first.external_id
    router = pishkhan.stack.runtime.router
    assert router is not None
    await router.route(
        Inbound(
            channel="contact",
            external_id="reaction-1",
            sender=Sender(external_id="negar@example.com", email="negar@example.com"),
            text="واکنش ❤ به پیام",
            metadata={"reaction_to": first.external_id, "reaction": "❤"},
        )
    )
    await page.reload()
    await open_conversation(page, "نگار")
    mark = page.locator(".msg-in", has_text="فاکتورم کجاست").locator(".reaction")
    await mark.wait_for()
    assert await mark.inner_text() == "❤"
    assert await page.locator(".msg", has_text="واکنش ❤ به پیام").count() == 0
    assert page.errors == []
