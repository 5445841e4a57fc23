"""Two agents in two browsers: a web-form message arrives live, is answered, transferred,
noted with an @mention, resolved and found again; the Persian UI is right-to-left; customer
HTML stays inert. Screenshots land in tests/e2e/screenshots/ for a human to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Team
from tests.fixtures.stack import PASSWORD

pytestmark = pytest.mark.asyncio(loop_scope="session")

VIEWPORT = {"width": 1440, "height": 900}
# From the seed documents: real Persian as people type it (ZWNJ lost, Persian ی and ک).
QUESTION = (
    "سلام، توجه به مشتری پس از فروش کالا برای ما مهم است. سفارش ۱۲۳۴ من هنوز نرسیده "
    "و پشتیبانی پاسخگو نیست؛ لطفاً پیگیری کنید."
)


async def login(browser: Any, base: str, email: str) -> Any:
    context = await browser.new_context(viewport=VIEWPORT, locale="fa-IR")
    page = await context.new_page()
    page.set_default_timeout(8000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # checked at the end of a test: no script error anywhere
    await page.goto(base + "/")
    await page.fill("#login-email", email)
    await page.fill("#login-password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector(".topbar")
    return page


async def add_canned(pishkhan: Team, agent_id: int, shortcut: str, title: str, text: str) -> None:
    admin = next(a for a in pishkhan.stack.agents if a.id == agent_id)
    status, answer = await admin.send(
        "POST", "/api/v1/canned-responses", {"shortcut": shortcut, "title": title, "text": text}
    )
    assert status == 201, answer


async def open_conversation(page: Any, text: str) -> None:
    await page.locator(".conv", has_text=text).first.click()
    await page.wait_for_selector(".thread-head")


async def test_two_agents_work_a_conversation_live(
    browser: Any, pishkhan: Team, screenshots: Path
) -> None:
    ali = await pishkhan.agent("ali@example.com", "علی رضایی", role="admin")
    sara = await pishkhan.agent("sara@example.com", "سارا احمدی", online=False)
    await add_canned(pishkhan, ali.id, "salam", "خوشامد", "سلام، از تماس شما سپاسگزاریم.")
    page_a = await login(browser, pishkhan.base, "ali@example.com")
    page_b = await login(browser, pishkhan.base, "sara@example.com")

    # Persian by default: right to left, the sidebar on the right.
    assert await page_a.evaluate("getComputedStyle(document.documentElement).direction") == "rtl"
    sidebar = await page_a.locator(".sidebar").bounding_box()
    listing = await page_a.locator(".list-pane").bounding_box()
    assert sidebar and listing and sidebar["x"] > listing["x"]

    # A customer writes; it appears live in the assigned agent's "Mine" without a reload.
    status, _ = await pishkhan.stack.post_form(
        "contact",
        {"name": "مریم کاظمی", "email": "maryam@example.com", "message": QUESTION},
    )
    assert status in (200, 201, 202, 303)
    await page_a.locator(".conv", has_text="مریم کاظمی").wait_for()
    assert await page_a.title() != ""
    await open_conversation(page_a, "مریم کاظمی")
    await page_a.locator(".msg-in", has_text="سفارش ۱۲۳۴").wait_for()
    await page_a.locator(".customer-pane", has_text="maryam@example.com").wait_for()

    # A label from the header; the customer's attributes from the 360° panel's API.
    await page_a.fill(".label-input", "پیگیری سفارش")
    await page_a.press(".label-input", "Enter")
    await page_a.locator(".thread-head .chip", has_text="پیگیری سفارش").wait_for()
    await page_a.locator(".conv .chip", has_text="پیگیری سفارش").wait_for()

    # Reply with a canned response picked by its /shortcut, sent with Ctrl+Enter; the reply
    # shows with its delivery status.
    await page_a.keyboard.press("r")
    await page_a.keyboard.type("/sal")
    await page_a.locator(".suggest-item", has_text="/salam").wait_for()
    await page_a.keyboard.press("Enter")
    await page_a.keyboard.type(" سفارش شما در حال بررسی است.")
    await page_a.keyboard.press("Control+Enter")
    reply = page_a.locator(".msg-out", has_text="سپاسگزاریم. سفارش شما در حال بررسی است")
    await reply.wait_for()
    await reply.locator(".delivery").wait_for()
    await page_a.screenshot(path=str(screenshots / "fa-inbox-thread.png"))

    # Transfer to Sara, who sees it arrive live in her own list.
    await page_a.select_option(".assign-select", label="سارا احمدی")
    await page_a.locator(".thread-head .assignee", has_text="سارا احمدی").wait_for()
    await page_b.locator(".conv", has_text="مریم کاظمی").wait_for()
    await open_conversation(page_b, "مریم کاظمی")
    # Both have it open: each sees the other in the collision notice above the composer.
    await page_b.locator(".collision .viewing", has_text="علی رضایی").wait_for()
    await page_a.locator(".collision .viewing", has_text="سارا احمدی").wait_for()

    # Sara writes a note mentioning Ali (picked from the @ autocomplete); Ali is notified.
    await page_b.keyboard.press("n")
    await page_b.keyboard.type("@علی")
    await page_b.locator(".suggest-item", has_text="علی رضایی").wait_for()
    await page_b.keyboard.press("Enter")
    await page_b.keyboard.type("لطفاً وضعیت ارسال را بررسی کن")
    await page_a.locator(".collision .typing", has_text="سارا احمدی").wait_for()
    await page_a.screenshot(path=str(screenshots / "fa-collision.png"))
    await page_b.keyboard.press("Control+Enter")
    await page_b.locator(".msg-note", has_text="وضعیت ارسال").wait_for()
    await page_a.locator(".toast.notify", has_text="سارا احمدی").wait_for()
    await page_a.locator(".msg-note", has_text="وضعیت ارسال").wait_for()  # live in the thread
    await page_b.screenshot(path=str(screenshots / "fa-note-mention.png"))

    # Resolve from the keyboard.
    await page_b.locator(".messages").click()
    await page_b.keyboard.press("e")
    await page_b.locator(".thread-head .status.st-resolved").wait_for()
    _, detail = await ali.get("/api/v1/conversations?status=resolved")
    assert [c["customer"]["name"] for c in detail["conversations"]] == ["مریم کاظمی"]

    # English: left to right, Gregorian dates, the sidebar on the left.
    await page_a.click("#lang-switch")
    await page_a.locator(".nav-item", has_text="Mine").wait_for()
    assert await page_a.evaluate("getComputedStyle(document.documentElement).direction") == "ltr"
    sidebar = await page_a.locator(".sidebar").bounding_box()
    listing = await page_a.locator(".list-pane").bounding_box()
    assert sidebar and listing and sidebar["x"] < listing["x"]
    await page_a.click(".nav-item[data-view=all]")
    await page_a.click(".pill[data-status=any]")
    await open_conversation(page_a, "مریم کاظمی")
    await page_a.screenshot(path=str(screenshots / "en-inbox-thread.png"))

    # Admin pages, for admins only.
    await page_a.click(".top-tab[data-page=admin]")
    await page_a.locator(".table", has_text="sara@example.com").wait_for()
    await page_a.screenshot(path=str(screenshots / "en-admin-agents.png"))
    await page_a.click("#lang-switch")
    await page_a.locator(".admin-nav .nav-item", has_text="کارشناسان").wait_for()
    await page_a.screenshot(path=str(screenshots / "fa-admin-agents.png"))
    # An admin creates a team and puts Sara in it, in the UI.
    await page_a.click(".admin-nav [data-tab=teams]")
    await page_a.fill(".admin-body form.inline-form input", "پشتیبانی فنی")
    await page_a.press(".admin-body form.inline-form input", "Enter")
    row = page_a.locator(".admin-body tr", has_text="پشتیبانی فنی")
    await row.wait_for()
    await row.locator("select").select_option(label="سارا احمدی")
    await row.locator(".chip", has_text="سارا احمدی").wait_for()
    await page_a.screenshot(path=str(screenshots / "fa-admin-teams.png"))
    _, teams = await ali.get("/api/v1/teams")
    assert [(t["name"], [m["agent_id"] for m in t["members"]]) for t in teams["teams"]] == [
        ("پشتیبانی فنی", [sara.id])
    ]
    for tab in ("teams", "canned", "labels", "channels", "rules"):
        await page_a.click(f".admin-nav [data-tab={tab}]")
        await page_a.locator(".admin-body .card").first.wait_for()
    assert await page_b.locator(".top-tab[data-page=admin]").count() == 0

    # Presence from the header.
    await page_b.select_option("#presence", "away")
    await page_b.locator(".me .presence-dot.away").wait_for()
    assert page_a.errors == [] and page_b.errors == []


async def test_customer_html_stays_inert(browser: Any, pishkhan: Team, screenshots: Path) -> None:
    await pishkhan.agent("ali@example.com", "علی رضایی")
    page = await login(browser, pishkhan.base, "ali@example.com")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    hostile = (
        "<script>window.__pwned = 1; alert('script')</script>"
        "<img src=x onerror=\"window.__pwned = 2; alert('img')\"> سلام"
    )
    await pishkhan.stack.post_form(
        "contact", {"name": "<b>نفوذگر</b>", "email": "x@example.com", "message": hostile}
    )
    await page.locator(".conv", has_text="<b>نفوذگر</b>").wait_for()
    await open_conversation(page, "نفوذگر")
    body = page.locator(".msg-in .msg-body")
    await body.wait_for()
    assert "<script>window.__pwned = 1" in await body.inner_text()
    await page.wait_for_timeout(300)
    assert await page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert await page.locator(".messages img, .messages script").count() == 0
    await page.screenshot(path=str(screenshots / "fa-inert-html.png"))


async def test_search_finds_persian_typed_with_arabic_letters(browser: Any, pishkhan: Team) -> None:
    ali = await pishkhan.agent("ali@example.com", "علی رضایی")
    status, _ = await ali.get("/api/v1/search?q=x")
    if status in (404, 405):
        pytest.skip("GET /api/v1/search is not on the server yet (another engineer's route)")
    page = await login(browser, pishkhan.base, "ali@example.com")
    await pishkhan.stack.post_form(
        "contact", {"name": "مریم کاظمی", "email": "maryam@example.com", "message": QUESTION}
    )
    await page.locator(".conv", has_text="مریم کاظمی").wait_for()
    await page.keyboard.press("/")
    await page.keyboard.type("مشتري")  # Arabic yeh; the message has Persian ی
    await page.keyboard.press("Enter")
    result = page.locator(".search-results .sr-item", has_text="مریم کاظمی").first
    await result.wait_for()
    await result.click()
    await page.locator(".msg-in", has_text="سفارش ۱۲۳۴").wait_for()
