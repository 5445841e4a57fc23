"""Automation rules in a real Chromium: an admin builds a rule row by row in the Admin page,
and the next web-form message is labelled by it; the change shows in the audit list. The
thread header sets a conversation's priority."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Team
from tests.e2e.test_inbox import login, open_conversation
from tests.fixtures.stack import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_admin_makes_a_rule_that_labels_the_next_message(
    browser: Any, pishkhan: Team, screenshots: Path
) -> None:
    boss = await pishkhan.agent("boss@example.com", "مدیر", role="admin", online=False)
    assert (await boss.send("POST", "/api/v1/labels", {"name": "شکایت"}))[0] == 201
    page = await login(browser, pishkhan.base, "boss@example.com")
    await page.click("[data-page=admin]")
    await page.click("[data-tab=automation]")
    assert await page.locator(".admin-title").inner_text() == "خودکارسازی"

    await page.click("[data-action=au-new]")
    editor = page.locator(".au-editor")
    await editor.locator("input[name=name]").fill("برچسب شکایت")
    await editor.locator("[data-action=au-add-condition]").click()
    condition = editor.locator(".au-condition").first
    await condition.locator("select[name=type]").select_option("text")
    await condition.locator("input[name=words]").fill("شکایت، ناراضی")
    await editor.locator("[data-action=au-add-condition]").click()
    channel = editor.locator(".au-condition").nth(1)
    await channel.locator("select[name=values]").select_option(["contact"])
    action = editor.locator(".au-action").first
    await action.locator("select[name=type]").select_option("add_labels")
    await action.locator("select[name=labels]").select_option(["شکایت"])
    await page.screenshot(path=str(screenshots / "automation_editor_fa.png"), full_page=True)
    await editor.locator("[data-action=au-save]").click()

    rule = page.locator("[data-trigger='message.created'] .au-rule")
    await rule.first.wait_for()
    assert "برچسب شکایت" in await rule.first.inner_text()
    assert "ساخت" in await page.locator(".au-audit").inner_text()
    await page.screenshot(path=str(screenshots / "automation_admin_fa.png"), full_page=True)

    fields = {"name": "نگار", "email": "negar@example.com", "message": "از ارسال ناراضی‌ام"}
    assert (await pishkhan.stack.post_form("contact", fields))[0] in (200, 201, 202, 303)

    async def labelled() -> list[str] | None:
        _, body = await boss.get("/api/v1/conversations", params={"view": "all"})
        found = [c for c in body["conversations"] if c["customer"]["name"] == "نگار"]
        return found[0]["labels"] if found and found[0]["labels"] else None

    assert await eventually(labelled) == ["شکایت"]
    _, rules = await boss.get("/api/v1/automation/rules")
    assert [(r["name"], r["conditions"]) for r in rules["rules"]] == [
        (
            "برچسب شکایت",
            [
                {"type": "text", "words": ["شکایت", "ناراضی"]},
                {"type": "channel", "values": ["contact"]},
            ],
        )
    ]

    # Agents set the priority in the thread header; rules may too.
    await page.click("[data-page=inbox]")
    await page.click(".nav-item[data-view=all]")
    await open_conversation(page, "نگار")
    await page.select_option(".thread-head [data-action=priority]", "urgent")

    async def urgent() -> bool:
        _, body = await boss.get("/api/v1/conversations", params={"view": "all"})
        return any(c["priority"] == "urgent" for c in body["conversations"])

    assert await eventually(urgent)
    assert page.errors == []
