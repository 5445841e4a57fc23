"""A satisfaction survey in the website chat, in Chromium: the agent resolves in the inbox, the
visitor sees five buttons, taps "۴ خوب", and the agent's thread shows four stars."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import select

from storage.config import StorageConfig
from storage.models import Conversation
from tests.channels.test_webchat import ALWAYS_OPEN
from tests.e2e.test_inbox import login
from tests.e2e.test_webchat import PAGE, Site, conversation_id, free_port, open_page, reply
from tests.fixtures.stack import running_stack

pytestmark = pytest.mark.asyncio(loop_scope="session")
WIDGET = "#pishkhan-webchat-site"


@pytest_asyncio.fixture(loop_scope="session")
async def surveyed_site(tmp_path: Path) -> AsyncIterator[Site]:
    page_port, inbox_port = free_port(), free_port()
    page_origin, inbox = f"http://127.0.0.1:{page_port}", f"http://127.0.0.1:{inbox_port}"

    async def page(_request: web.Request) -> web.Response:
        return web.Response(
            text=PAGE.format(lang="fa", css="", inbox=inbox), content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", page_port).start()
    storage = StorageConfig(
        url=f"sqlite+aiosqlite:///{tmp_path / 'pishkhan.db'}", sqlite_synchronous="normal"
    )
    settings: dict[str, Any] = {
        "server": {"port": inbox_port},
        "channels": [
            {
                "type": "webchat",
                "name": "site",
                "allowed_origins": [page_origin],
                "language": "fa",
                "ask_contact": "none",
            }
        ],
        "routing": {"business_hours": ALWAYS_OPEN, "csat": {"channels": ["site"]}},
    }
    try:
        async with running_stack(storage, settings) as stack:
            yield Site(url=page_origin + "/", stack=stack, settings=settings, storage=storage)
    finally:
        await runner.cleanup()


async def test_the_visitor_rates_with_a_button_and_the_agent_sees_the_stars(
    browser: Any, surveyed_site: Site, screenshots: Path
) -> None:
    stack = surveyed_site.stack
    sara = await stack.add_agent("sara@example.com")
    visitor = await open_page(browser, surveyed_site.url)
    await visitor.click(f"{WIDGET} .launcher")
    await visitor.fill(f"{WIDGET} textarea", "سلام، کد تخفیفم کار نمی‌کند")
    await visitor.keyboard.press("Enter")
    conversation = await conversation_id(stack)
    await reply(sara, conversation, "کد تازه‌ای برایتان فعال کردم.")
    await visitor.wait_for_selector(f"{WIDGET} .msg.agent:has-text('کد تازه')")

    inbox = await login(browser, stack.base, "sara@example.com")
    await inbox.locator(".conv", has_text="کد تازه").first.click()
    await inbox.wait_for_selector(".thread-head")
    await inbox.click("[data-action=resolve]")

    buttons = visitor.locator(f"{WIDGET} .replies button.reply")
    await buttons.first.wait_for()
    assert [t.strip() for t in await buttons.all_text_contents()] == [
        "۵ ⭐ عالی",
        "۴ خوب",
        "۳ متوسط",
        "۲ ضعیف",
        "۱ خیلی بد",
    ]
    await buttons.filter(has_text="۴ خوب").click()
    await visitor.wait_for_selector(f"{WIDGET} .msg:has-text('سپاس از امتیاز شما')")

    card = inbox.locator(".csat-card[data-rating='4']")
    await card.wait_for()
    assert "★★★★☆" in await card.inner_text()
    assert await card.get_attribute("data-low") == "0"
    await inbox.screenshot(path=str(screenshots / "csat-thread-fa.png"))
    async with stack.sessions() as session:
        status = await session.scalar(
            select(Conversation.status).where(Conversation.id == conversation)
        )
    assert status == "resolved"
    assert visitor.errors == [] and inbox.errors == []
