"""The reply window in a real Chromium: the composer counts down to when a WhatsApp-like
conversation's window closes (amber in its last hour); once closed, the text box gives way to
a notice and a template picker whose template reaches the channel. Notes stay possible.
Screenshots land in tests/e2e/screenshots/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from channels.base import Inbound, Sender, TemplateMessage
from routing.router import INBOUND_TOPIC
from tests.e2e.conftest import Team
from tests.e2e.test_inbox import login, open_conversation
from tests.fixtures.stack import Agent, eventually
from tests.fixtures.window_channel import WindowChannel

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def customer_writes(team: Team, agent: Agent, name: str, phone: str, ago: timedelta) -> None:
    services = team.stack.runtime.services
    assert services is not None
    inbound = Inbound(
        channel="wa",
        external_id=f"wamid.{phone}",
        sender=Sender(external_id=phone, name=name),
        text="سلام، سفارش ۱۲۳۴ من کی می‌رسد؟",
        thread_id=phone,
        received_at=datetime.now(UTC) - ago,
    )
    await services.queue.publish(INBOUND_TOPIC, inbound.order_key, inbound.to_json())

    async def listed() -> bool:
        _, listing = await agent.get("/api/v1/conversations?channel=wa")
        return any(c["customer"]["name"] == name for c in listing["conversations"])

    await eventually(listed)


async def test_the_composer_shows_the_window_and_sends_a_template_once_it_closed(
    browser: Any, pishkhan: Team, screenshots: Path
) -> None:
    services = pishkhan.stack.runtime.services
    assert services is not None
    channel = WindowChannel("wa")
    services.channels["wa"] = channel  # type: ignore[index]
    ali = await pishkhan.agent("ali@example.com", "علی رضایی", role="admin")
    await customer_writes(
        pishkhan, ali, "مریم کاظمی", "989120000001", timedelta(hours=23, minutes=20)
    )
    await customer_writes(pishkhan, ali, "رضا احمدی", "989120000002", timedelta(hours=30))
    page = await login(browser, pishkhan.base, "ali@example.com")

    # Open: a countdown, amber in the last hour; the reply goes out as text.
    await open_conversation(page, "مریم کاظمی")
    composer = page.locator(".composer")
    line = composer.locator(".reply-window.closing")
    await line.wait_for()
    assert "پنجرهٔ پاسخ" in await line.inner_text() and "دقیقه" in await line.inner_text()
    await page.screenshot(path=str(screenshots / "fa-reply-window-closing.png"))
    await composer.locator(".composer-input").fill("فردا به دستتان می‌رسد.")
    await composer.locator(".composer-input").press("Control+Enter")
    await page.locator(".msg-out", has_text="فردا به دستتان").wait_for()
    await eventually(lambda: _sent(channel, 1))
    assert channel.sent[0].template is None

    # Closed: a notice and the template picker instead of the text box.
    await open_conversation(page, "رضا احمدی")
    await composer.locator(".reply-window.closed").wait_for()
    closed = composer.locator(".window-closed")
    await closed.locator(".window-notice", has_text="بسته شد").wait_for()
    assert not await composer.locator(".composer-input").is_visible()
    await closed.locator(".template-select").select_option(label="order_update (fa)")
    send = closed.locator(".send-template")
    assert await send.is_disabled()  # every parameter needs a value
    await closed.locator(".template-param").nth(0).fill("۱۲۳۴")
    await closed.locator(".template-param").nth(1).fill("دوشنبه")
    await closed.locator(".template-preview", has_text="سفارش ۱۲۳۴ شما در تاریخ دوشنبه").wait_for()
    await page.screenshot(path=str(screenshots / "fa-reply-window-template.png"))
    await send.click()
    sent = page.locator(".msg-out", has_text="سفارش ۱۲۳۴ شما در تاریخ دوشنبه")
    await sent.locator(".template-tag", has_text="order_update").wait_for()
    assert "[template:" not in await sent.locator(".msg-body").inner_text()
    await eventually(lambda: _sent(channel, 2))
    assert channel.sent[1].template == TemplateMessage("order_update", "fa", ("۱۲۳۴", "دوشنبه"))

    # A private note is still possible.
    await composer.locator("[data-mode=note]").click()
    assert await composer.locator(".composer-input").is_visible()
    await composer.locator(".composer-input").fill("قالب پیگیری فرستاده شد")
    await composer.locator(".composer-input").press("Control+Enter")
    await page.locator(".msg-note", has_text="قالب پیگیری").wait_for()

    # In English, left to right.
    await composer.locator("[data-mode=reply]").click()
    await page.click("#lang-switch")
    await page.locator(".reply-window.closed", has_text="Reply window closed").wait_for()
    await page.locator(".window-notice", has_text="Send an approved template").wait_for()
    await page.screenshot(path=str(screenshots / "en-reply-window-template.png"))
    assert page.errors == []


async def _sent(channel: WindowChannel, count: int) -> bool:
    return len(channel.sent) >= count
