"""Attaching files in the composer, in a real Chromium: picked with the button, pasted and
dropped; a refused file says why; the reply goes out with its files, shown as download links.
Screenshots land in tests/e2e/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Team
from tests.e2e.test_inbox import login, open_conversation

pytestmark = pytest.mark.asyncio(loop_scope="session")

QUESTION = "سلام، رسید خرید سفارش ۱۲۳۴ را برایم بفرستید؛ راهنمای نصب هم اگر هست لطفاً."
ANSWER = "رسید و راهنمای نصب پیوست شد."
RECEIPT = "رسید خرید ۱۲۳۴.pdf"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)

# A file handed to the page's own events, the way a paste or a drop hands it over.
_HAND_OVER = """([kind, name, type, bytes]) => {
  const data = new DataTransfer();
  data.items.add(new File([new Uint8Array(bytes)], name, { type }));
  const composer = document.querySelector(".composer");
  const how = { bubbles: true, cancelable: true };
  if (kind === "paste") {
    const box = composer.querySelector(".composer-input");
    box.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, ...how }));
  } else {
    for (const type of ["dragenter", "dragover", "drop"]) {
      composer.dispatchEvent(new DragEvent(type, { dataTransfer: data, ...how }));
    }
  }
}"""


async def test_an_agent_attaches_files_and_sends_them(
    browser: Any, pishkhan: Team, screenshots: Path
) -> None:
    ali = await pishkhan.agent("ali@example.com", "علی رضایی", role="admin")
    status, _ = await pishkhan.stack.post_form(
        "contact", {"name": "مریم کاظمی", "email": "maryam@example.com", "message": QUESTION}
    )
    assert status in (200, 201, 202, 303)
    page = await login(browser, pishkhan.base, "ali@example.com")
    await page.locator(".conv", has_text="مریم کاظمی").wait_for()
    await open_conversation(page, "مریم کاظمی")
    composer = page.locator(".composer")
    assert (await composer.locator(".attach").inner_text()).strip() == "پیوست"

    # Picked with the attach button's file input.
    await composer.locator("input.file-input").set_input_files(
        files=[{"name": RECEIPT, "mimeType": "application/pdf", "buffer": PDF}]
    )
    await composer.locator(".file-chip.fc-ready", has_text=RECEIPT).wait_for()

    # A program is refused: the chip and a toast say why; the × removes it.
    await composer.locator("input.file-input").set_input_files(
        files=[{"name": "setup.exe", "mimeType": "application/pdf", "buffer": b"MZ" + bytes(100)}]
    )
    refused = composer.locator(".file-chip.fc-error", has_text="setup.exe")
    await refused.wait_for()
    await page.locator(".toast.error", has_text="نمی‌توان پیوست کرد").wait_for()
    await page.screenshot(path=str(screenshots / "fa-composer-attachments.png"))
    await refused.locator(".chip-x").click()
    await refused.wait_for(state="detached")

    # Pasted into the text box, and dropped on the composer.
    await page.evaluate(_HAND_OVER, ["paste", "عکس کالا.png", "image/png", list(PNG)])
    await page.evaluate(_HAND_OVER, ["drop", "یادداشت.txt", "text/plain", list("سلام".encode())])
    await composer.locator(".file-chip.fc-ready", has_text="عکس کالا.png").wait_for()
    await composer.locator(".file-chip.fc-ready", has_text="یادداشت.txt").wait_for()
    assert await composer.locator(".file-chip").count() == 3

    await composer.locator(".composer-input").fill(ANSWER)
    await composer.locator(".composer-input").press("Control+Enter")
    reply = page.locator(".msg-out", has_text=ANSWER)
    await reply.wait_for()
    links = reply.locator("a.attachment")
    await links.first.wait_for()
    names = [name.strip() for name in await links.locator("span").all_inner_texts()]
    assert names == [RECEIPT, "عکس کالا.png", "یادداشت.txt"]
    assert await composer.locator(".file-chip").count() == 0  # the tray is empty again
    href = await links.first.get_attribute("href")
    assert href and "/api/v1/attachments/" in href
    # The web form cannot send files (it has no reply channel): the reply says so, visibly.
    await reply.locator(".ds-failed", has_text="cannot send attachments").wait_for()
    await page.screenshot(path=str(screenshots / "fa-reply-attachments.png"))

    # What the browser showed is what was stored.
    _, listing = await ali.get("/api/v1/conversations")
    conversation = listing["conversations"][0]["id"]
    _, detail = await ali.get(f"/api/v1/conversations/{conversation}")
    [sent] = [m for m in detail["messages"] if m["direction"] == "out"]
    assert [(a["name"], a["content_type"]) for a in sent["attachments"]] == [
        (RECEIPT, "application/pdf"),
        ("عکس کالا.png", "image/png"),
        ("یادداشت.txt", "text/plain"),
    ]
    async with ali.http.get(ali.base + sent["attachments"][0]["url"]) as response:
        assert await response.read() == PDF

    # In English, left to right, the same composer.
    await page.click("#lang-switch")
    await page.locator(".composer .attach", has_text="Attach").wait_for()
    await page.screenshot(path=str(screenshots / "en-reply-attachments.png"))
    assert page.errors == []
