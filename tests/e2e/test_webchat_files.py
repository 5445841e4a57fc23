"""The agent's files in the chat widget, in a real headless Chromium on another site's page: a
picture shows as a thumbnail, a click on a file downloads it under its Persian name."""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.test_webchat import Site, conversation_id, open_page, site  # noqa: F401 - fixture
from tests.fixtures.stack import Agent

pytestmark = pytest.mark.asyncio(loop_scope="session")

PDF = b"%PDF-1.4 invoice 1234"
WIDGET = "#pishkhan-webchat-site"


def png(width: int = 40, height: int = 30) -> bytes:
    """A real (decodable) picture: a blue rectangle."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\x1f\x6f\xeb" * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


async def reply_with_files(
    agent: Agent, conversation: int, files: list[tuple[str, bytes, str]]
) -> None:
    form = aiohttp.FormData(quote_fields=False)
    for name, data, kind in files:
        form.add_field("file", data, filename=name, content_type=kind)
    async with agent.http.post(
        f"{agent.base}/api/v1/conversations/{conversation}/attachments",
        data=form,
        headers={"X-CSRF-Token": agent.csrf},
    ) as response:
        assert response.status == 201, await response.text()
        uploaded = (await response.json())["attachments"]
    status, body = await agent.send(
        "POST",
        f"/api/v1/conversations/{conversation}/messages",
        {"text": "فاکتور و عکس بسته", "attachments": [u["id"] for u in uploaded]},
    )
    assert status == 201, body


async def test_the_visitor_downloads_the_agents_file(
    browser: Any,
    site: Site,  # noqa: F811 - the fixture imported above
    screenshots: Path,
) -> None:
    stack = site.stack
    sara = await stack.add_agent("sara@example.com")
    page = await open_page(browser, site.url)
    await page.click(f"{WIDGET} .launcher")
    await page.click(f"{WIDGET} button.skip")
    await page.fill(f"{WIDGET} textarea", "فاکتور سفارشم را می‌فرستید؟")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(f"{WIDGET} .msg.visitor .meta:text('ارسال شد')")

    conversation = await conversation_id(stack)
    await reply_with_files(
        sara,
        conversation,
        [("فاکتور ۱۲۳۴.pdf", PDF, "application/pdf"), ("بسته.png", png(), "image/png")],
    )
    pdf_link = page.locator(f"{WIDGET} .msg.agent a.file:has-text('فاکتور ۱۲۳۴.pdf')")
    await pdf_link.wait_for()
    # The picture shows as a thumbnail, loaded from its signed link.
    thumb = page.locator(f"{WIDGET} .msg.agent a.file img.thumb")
    await thumb.wait_for()
    await page.wait_for_function(
        f"() => {{ const i = document.querySelector('{WIDGET}').shadowRoot"
        ".querySelector('img.thumb'); return i && i.complete && i.naturalWidth === 40; }"
    )
    await page.screenshot(path=str(screenshots / "webchat-files.png"))

    async with page.expect_download() as info:
        await pdf_link.click()
    download = await info.value
    assert download.suggested_filename == "فاکتور ۱۲۳۴.pdf"
    assert await asyncio.to_thread(Path(await download.path()).read_bytes) == PDF
    assert page.url == site.url  # downloaded; the visitor's page stayed where it was

    # After a reload the history carries working links too.
    await page.reload()  # the panel stays open across page loads
    again = page.locator(f"{WIDGET} .msg.agent a.file:has-text('فاکتور ۱۲۳۴.pdf')")
    await again.wait_for()
    async with page.expect_download() as info:
        await again.click()
    saved = Path(await (await info.value).path())
    assert await asyncio.to_thread(saved.read_bytes) == PDF

    # The visitor's own picture links back once it is stored.
    await page.locator(f"{WIDGET} input[type=file]").set_input_files(
        files=[{"name": "عکس.png", "mimeType": "image/png", "buffer": png(20, 10)}]
    )
    await page.locator(f"{WIDGET} .msg.visitor a.file:has-text('عکس.png') img.thumb").wait_for()
    assert page.errors == []
