"""The website chat widget in a real headless Chromium, on a page of another site served by the
test: the visitor writes, an agent answers through the API and the visitor sees it live; the
server restarts mid-conversation and the widget resumes with nothing lost or doubled; the
Persian widget is right-to-left; the page's CSS cannot reach it and messages never render HTML."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import select

from channels.base import Outbound, Sender
from inbox.runtime import Runtime
from storage.config import StorageConfig
from storage.models import ContactPoint, Conversation, Message
from tests.channels.test_webchat import ALWAYS_OPEN
from tests.fixtures.stack import Agent, Stack, eventually, running_stack, stack_config

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOSTILE_CSS = (
    "div, span, button, textarea { font-size: 40px !important; color: red !important;"
    " direction: ltr !important; }"
)
PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>فروشگاه</title>
<style>{css}</style></head>
<body><h1>فروشگاه نمونه</h1>
<script src="{inbox}/channels/webchat/site/widget.js" async></script>
</body></html>"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Site:
    """A customer's website (its own origin) carrying the widget, and the Pishkhan behind it."""

    url: str
    stack: Stack
    settings: dict[str, Any]
    storage: StorageConfig

    async def restart(self) -> None:
        """Stop Pishkhan and start it again on the same port and database."""
        await self.stack.runtime.stop()
        self.stack.runtime = Runtime(stack_config(self.storage, self.settings))
        await self.stack.runtime.start()


@pytest_asyncio.fixture(loop_scope="session")
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    page_port, inbox_port = free_port(), free_port()
    page_origin, inbox = f"http://127.0.0.1:{page_port}", f"http://127.0.0.1:{inbox_port}"

    async def page(request: web.Request) -> web.Response:
        html = PAGE.format(
            lang=request.query.get("lang", "fa"),
            css=HOSTILE_CSS if "hostile" in request.query else "",
            inbox=inbox,
        )
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", page_port).start()
    storage = StorageConfig(
        url=f"sqlite+aiosqlite:///{tmp_path / 'pishkhan.db'}", sqlite_synchronous="normal"
    )
    settings = {
        "server": {"port": inbox_port},
        "channels": [
            {
                "type": "webchat",
                "name": "site",
                "allowed_origins": [page_origin],
                "language": "auto",
                "ask_contact": "optional",
            }
        ],
        "routing": {"business_hours": ALWAYS_OPEN},
    }
    try:
        async with running_stack(storage, settings) as stack:
            try:
                yield Site(url=page_origin + "/", stack=stack, settings=settings, storage=storage)
            finally:
                await stack.runtime.stop()  # the one a restart started (stopping is idempotent)
    finally:
        await runner.cleanup()


async def open_page(browser: Any, url: str) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    await page.goto(url)
    return page


async def stored_texts(stack: Stack) -> list[str]:
    async with stack.sessions() as session:
        rows = await session.scalars(
            select(Message.text).where(Message.direction == "in").order_by(Message.id)
        )
        return list(rows.all())


async def conversation_id(stack: Stack) -> int:
    async def probe() -> int | None:
        async with stack.sessions() as session:
            return await session.scalar(select(Message.conversation_id).limit(1))

    return await eventually(probe)


async def reply(agent: Agent, conversation: int, text: str) -> None:
    status, body = await agent.send(
        "POST", f"/api/v1/conversations/{conversation}/messages", {"text": text}
    )
    assert status in (200, 201), body


async def texts(page: Any, selector: str) -> list[str]:
    return [t.strip() for t in await page.locator(selector).all_text_contents()]


async def test_a_visitor_chats_through_a_restart_in_persian(
    browser: Any, site: Site, screenshots: Path
) -> None:
    stack = site.stack
    sara = await stack.add_agent("sara@example.com")
    page = await open_page(browser, site.url)
    await page.click("#pishkhan-webchat-site .launcher")
    # Asked who they are first (optional): name and email.
    await page.fill("#pishkhan-webchat-site input.name", "مریم")
    await page.fill("#pishkhan-webchat-site input.email", "maryam@example.com")
    await page.click("#pishkhan-webchat-site button.start")
    await page.fill("#pishkhan-webchat-site textarea", "سلام، سفارش ۱۲۳۴ من هنوز نرسیده است")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#pishkhan-webchat-site .msg.visitor .meta:text('ارسال شد')")

    conversation = await conversation_id(stack)
    await reply(sara, conversation, "سلام مریم جان، بررسی می‌کنم")
    await page.wait_for_selector("#pishkhan-webchat-site .msg.agent:has-text('بررسی می‌کنم')")
    assert await texts(page, "#pishkhan-webchat-site .msg.agent .author") == ["sara"]

    # The agent reads it: the visitor sees "read".
    await sara.send("POST", f"/api/v1/conversations/{conversation}/read")
    await page.wait_for_selector("#pishkhan-webchat-site .msg.visitor .meta:text('خوانده شد')")

    direction = await page.evaluate(
        "() => getComputedStyle(document.querySelector('#pishkhan-webchat-site')"
        ".shadowRoot.querySelector('.panel')).direction"
    )
    assert direction == "rtl"
    box = await page.locator("#pishkhan-webchat-site .launcher").bounding_box()
    assert box is not None and box["x"] < 640  # Persian: the launcher sits bottom-left
    await page.screenshot(path=str(screenshots / "webchat-fa.png"))

    # The server restarts; meanwhile the visitor writes. Nothing is lost or doubled.
    await site.restart()
    stack = site.stack
    await page.fill("#pishkhan-webchat-site textarea", "ممنون، منتظرم")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(
        "#pishkhan-webchat-site .msg.visitor:has-text('منتظرم') .meta:text('ارسال شد')",
        timeout=20_000,
    )
    sara = await stack.login("sara@example.com")
    await reply(sara, conversation, "ارسال شد؛ کد رهگیری ۵۵۵")
    await page.wait_for_selector("#pishkhan-webchat-site .msg.agent:has-text('۵۵۵')")

    async def both() -> list[str] | None:
        found = await stored_texts(stack)
        return found if len(found) >= 2 else None

    assert await eventually(both) == ["سلام، سفارش ۱۲۳۴ من هنوز نرسیده است", "ممنون، منتظرم"]

    # A reload shows the whole conversation once, from the history.
    await page.reload()
    await page.wait_for_selector("#pishkhan-webchat-site .msg.agent:has-text('۵۵۵')")
    assert await texts(page, "#pishkhan-webchat-site .msg.visitor .text") == [
        "سلام، سفارش ۱۲۳۴ من هنوز نرسیده است",
        "ممنون، منتظرم",
    ]
    assert await texts(page, "#pishkhan-webchat-site .msg.agent .text") == [
        "سلام مریم جان، بررسی می‌کنم",
        "ارسال شد؛ کد رهگیری ۵۵۵",
    ]
    assert await stored_texts(stack) == ["سلام، سفارش ۱۲۳۴ من هنوز نرسیده است", "ممنون، منتظرم"]
    await page.screenshot(path=str(screenshots / "webchat-fa-after-restart.png"))
    assert page.errors == []


async def test_the_english_widget_resists_the_page_and_never_renders_html(
    browser: Any, site: Site, screenshots: Path
) -> None:
    stack = site.stack
    sara = await stack.add_agent("sara@example.com")
    page = await open_page(browser, site.url + "?lang=en&hostile=1")
    await page.click("#pishkhan-webchat-site .launcher")
    await page.click("#pishkhan-webchat-site button.skip")
    await page.fill("#pishkhan-webchat-site textarea", "<b>bold?</b> hello")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#pishkhan-webchat-site .msg.visitor .meta:text('sent')")
    conversation = await conversation_id(stack)
    await reply(sara, conversation, '<img src=x onerror="window.hacked=1"> hi')
    await page.wait_for_selector("#pishkhan-webchat-site .msg.agent:has-text('onerror')")

    shadow = "document.querySelector('#pishkhan-webchat-site').shadowRoot"
    style = await page.evaluate(
        f"() => {{ const s = getComputedStyle({shadow}.querySelector('.panel'));"
        " return [s.direction, s.fontSize]; }"
    )
    assert style == ["ltr", "14px"]  # the page's `!important` rules did not get in
    assert await page.evaluate(f"() => {shadow}.querySelectorAll('img, b').length") == 0
    assert await page.evaluate("() => window.hacked") is None

    # The bot's choices become buttons; tapping one sends its text.
    assert stack.runtime.services is not None
    visitor = await page.evaluate("() => localStorage.getItem('pishkhan.webchat.site.token')")
    channel = stack.runtime.services.channels["site"]
    await channel.send(
        Outbound(
            message_id=10_000,
            channel="site",
            recipient=Sender(external_id=visitor.strip('"').split(".")[0]),
            text="What would you like?",
            quick_replies=("Track my order", "Talk to a person"),
        )
    )
    await page.click("#pishkhan-webchat-site .replies button:text('Track my order')")

    async def tapped() -> list[str] | None:
        found = await stored_texts(stack)
        return found if "Track my order" in found else None

    await eventually(tapped)
    await page.screenshot(path=str(screenshots / "webchat-en.png"))
    assert page.errors == []


async def test_with_nobody_to_answer_the_widget_takes_an_email(browser: Any, site: Site) -> None:
    stack = site.stack  # no agent is online
    page = await open_page(browser, site.url + "?lang=en")
    await page.click("#pishkhan-webchat-site .launcher")
    notice = page.locator("#pishkhan-webchat-site .notice")
    await notice.wait_for()
    assert "Nobody can answer right now" in await notice.text_content()
    assert not await page.locator("#pishkhan-webchat-site button.skip").is_visible()
    assert not await page.locator("#pishkhan-webchat-site textarea").is_visible()
    await page.click("#pishkhan-webchat-site button.start")  # no email: refused, says why
    await page.wait_for_selector("#pishkhan-webchat-site .msg.system:text('email')")
    await page.fill("#pishkhan-webchat-site input.email", "Reza@Example.com")
    await page.click("#pishkhan-webchat-site button.start")
    await page.fill("#pishkhan-webchat-site textarea", "Please email me the invoice")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#pishkhan-webchat-site .msg.visitor .meta:text('sent')")

    async def linked() -> list[str] | None:
        async with stack.sessions() as session:
            rows = await session.scalars(
                select(ContactPoint.value)
                .join(Conversation, Conversation.customer_id == ContactPoint.customer_id)
                .where(Conversation.channel == "site")
            )
            return list(rows.all()) or None

    assert await eventually(linked) == ["reza@example.com"]
    assert page.errors == []
