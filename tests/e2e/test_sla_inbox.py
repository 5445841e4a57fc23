"""SLA clocks in the inbox, in Chromium: each conversation in the list shows the time left on its
deadline; one inside the warning window is amber and its assignee gets an SLA notification; one
past due is red and recorded as a breach."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from storage.config import StorageConfig
from storage.models import Conversation, SlaBreach
from tests.e2e.test_inbox import login
from tests.fixtures.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="session")
ALL_DAY = {
    "timezone": "UTC",
    "week": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}


@pytest_asyncio.fixture(loop_scope="session")
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    storage = StorageConfig(
        url=f"sqlite+aiosqlite:///{tmp_path / 'pishkhan.db'}", sqlite_synchronous="normal"
    )
    routing = {
        "business_hours": ALL_DAY,
        "sla": {"policies": [{"name": "standard", "first_response": "2h", "resolution": "8h"}]},
    }
    async with running_stack(storage, {"routing": routing}) as running:
        yield running


async def _move_deadline(stack: Stack, conversation_id: int, due: datetime) -> None:
    """What the passing of time would do: the first-response deadline is now `due`."""
    async with stack.sessions.begin() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        moment = (due - timedelta(minutes=15)).isoformat()
        conversation.first_response_due_at = due
        conversation.sla_due_at = min(due, datetime.fromisoformat(moment))
        conversation.sla_state = {
            **conversation.sla_state,
            "warn_at": {"first_response": moment},
            "warn_from": {"first_response": moment},
        }


async def test_the_list_shows_time_left_a_warning_and_a_breach(
    browser: Any, stack: Stack, screenshots: Path
) -> None:
    sara = await stack.add_agent("sara@example.com")
    for name, email, text in (
        ("مریم کاظمی", "maryam@example.com", "سلام، سفارش ۴۵۱۲ هنوز نرسیده است."),
        ("رضا احمدی", "reza@example.com", "فاکتور خرید ماه پیش را می‌خواهم."),
        ("لیلا نوری", "leila@example.com", "رمز عبورم را فراموش کرده‌ام."),
    ):
        status, _ = await stack.post_form(
            "contact", {"name": name, "email": email, "message": text}
        )
        assert status == 202

    async def conversations() -> list[dict[str, Any]] | None:
        _, data = await sara.get("/api/v1/conversations?view=all")
        found = data["conversations"]
        return found if len(found) == 3 and all(c["sla"] for c in found) else None

    listed = await eventually(conversations)
    by_name = {c["customer"]["name"]: c for c in listed}
    assert by_name["لیلا نوری"]["sla"]["metric"] == "first_response"
    assert by_name["لیلا نوری"]["sla"]["policy"] == "standard"
    now = datetime.now(UTC)
    await _move_deadline(stack, by_name["مریم کاظمی"]["id"], now + timedelta(minutes=10))
    await _move_deadline(stack, by_name["رضا احمدی"]["id"], now - timedelta(minutes=5))
    assert stack.runtime.router is not None
    await stack.runtime.router.tick()

    page = await login(browser, stack.base, "sara@example.com")
    row = page.locator(".conv", has_text="مریم کاظمی")
    await row.locator(".sla[data-state=warning]").wait_for()
    assert "اولین پاسخ" in await row.locator(".sla").inner_text()
    late = page.locator(".conv", has_text="رضا احمدی").locator(".sla")
    await late.and_(page.locator("[data-state=breached]")).wait_for()
    assert "دیر" in await late.inner_text()
    fresh = page.locator(".conv", has_text="لیلا نوری").locator(".sla")
    assert await fresh.get_attribute("data-state") == "running"
    assert "ساعت" in await fresh.inner_text() and "مانده" in await fresh.inner_text()

    await page.click("button.bell")
    warning = page.locator(".notif", has_text="نزدیک است").first
    await warning.wait_for()
    assert "اولین پاسخ" in await warning.inner_text()  # the words are bidi-isolated
    await page.click("button.bell")  # closed again
    await row.click()
    await page.locator(".thread-head .sla[data-state=warning]").wait_for()
    await page.screenshot(path=str(screenshots / "sla-inbox-fa.png"))

    async with stack.sessions() as session:
        breaches = list(await session.scalars(select(SlaBreach)))
    assert [(b.conversation_id, b.metric) for b in breaches] == [
        (by_name["رضا احمدی"]["id"], "first_response")
    ]
    assert not page.errors
