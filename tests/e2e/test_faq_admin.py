"""The FAQ bot in a real Chromium: an admin writes and imports the knowledge base and reviews a
suggestion; an agent sees the bot's turns marked as the bot's, takes a conversation over, and
offers an answer the bot did not know to the FAQ. Screenshots land in tests/e2e/screenshots/."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from storage.config import StorageConfig
from tests.e2e.conftest import Team
from tests.e2e.test_inbox import login, open_conversation
from tests.fixtures.stack import Agent, eventually, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHOP_SECRET = "shop-site-shared-secret-0123"
KNOWLEDGE = """\
- question: ساعت کاری فروشگاه چیست؟
  alternatives: [چه ساعتی جواب می‌دهید]
  answer: شنبه تا چهارشنبه از ۹ تا ۱۷ پاسخگوییم.
  language: fa
"""
IMPORTED = """\
- question: رمز عبورم را فراموش کرده‌ام
  alternatives: [بازیابی رمز]
  answer: در صفحه ورود «فراموشی رمز» را بزنید.
  language: fa
  tags: [حساب]
- question: Do you ship abroad?
  answer: Not yet, only within Iran.
  language: en
"""


@pytest_asyncio.fixture(loop_scope="session")
async def with_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Team]:
    """Pishkhan whose API channel (a shop's site) has the FAQ bot, with a knowledge base of one
    entry. (A web form without a reply channel gets no bot: its answers could reach nobody.)"""
    monkeypatch.setenv("PISHKHAN_TEST_SHOP_SECRET", SHOP_SECRET)
    kb = tmp_path / "kb.yaml"
    kb.write_text(KNOWLEDGE, encoding="utf-8")
    storage = StorageConfig(
        url=f"sqlite+aiosqlite:///{tmp_path / 'pishkhan.db'}", sqlite_synchronous="normal"
    )
    extra = {
        "channels": [
            {
                "type": "api",
                "name": "contact",
                "bot": "faq",
                "secret": "${PISHKHAN_TEST_SHOP_SECRET}",
                "callback_url": "http://127.0.0.1:9/pishkhan/replies",
            }
        ],
        "routing": {"bot": {"knowledge_base": str(kb)}},
    }
    async with running_stack(storage, extra) as stack:
        yield Team(stack=stack, base=stack.base)


async def conversation_of(agent: Agent, name: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        _, body = await agent.get("/api/v1/conversations", params={"view": "all", "status": ""})
        return next((c for c in body["conversations"] if c["customer"]["name"] == name), None)

    return await eventually(find)


async def write(team: Team, name: str, email: str, text: str) -> None:
    body = json.dumps(
        {
            "id": uuid.uuid4().hex,
            "sender": {"id": email, "name": name, "email": email},
            "text": text,
        },
        ensure_ascii=False,
    ).encode()
    signature = "sha256=" + hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with team.stack.http.post(
        f"{team.base}/channels/api/contact/messages",
        data=body,
        headers={"X-Pishkhan-Signature": signature, "Content-Type": "application/json"},
    ) as response:
        assert response.status in (200, 201, 202), await response.text()


async def test_an_admin_edits_imports_and_reviews_the_knowledge_base(
    browser: Any, with_bot: Team, screenshots: Path
) -> None:
    boss = await with_bot.agent("boss@example.com", "مدیر", role="admin", online=False)
    ali = await with_bot.agent("ali@example.com", "علی رضایی")
    page = await login(browser, with_bot.base, "boss@example.com")
    assert await page.evaluate("getComputedStyle(document.documentElement).direction") == "rtl"

    await page.click("[data-page=admin]")
    await page.click("[data-tab=faq]")
    await page.locator(".faq-entry", has_text="ساعت کاری فروشگاه").wait_for()
    assert await page.locator(".admin-title").inner_text() == "پایگاه دانش"

    # A new entry through the form: alternatives one per line, tags separated by commas.
    await page.click("[data-action=faq-new]")
    await page.fill("#faq-question", "هزینه ارسال چقدر است؟")
    await page.fill("#faq-alternatives", "کرایه پست\nهزینه پست")
    await page.fill("#faq-answer", "ارسال بالای ۵۰۰ هزار تومان رایگان است.")
    await page.fill("#faq-tags", "ارسال، هزینه")
    await page.screenshot(path=str(screenshots / "fa-faq-entry-form.png"))
    await page.click(".faq-form button[type=submit]")
    row = page.locator(".faq-entry", has_text="هزینه ارسال چقدر است؟")
    await row.wait_for()
    assert "کرایه پست · هزینه پست" in await row.inner_text()
    assert await row.locator(".chip", has_text="هزینه").count() == 1
    # A blank question is refused by the server and said in the form.
    await page.click("[data-action=faq-new]")
    await page.fill("#faq-question", "   ")
    await page.fill("#faq-answer", "x")
    await page.click(".faq-form button[type=submit]")
    await page.locator(".form-error", has_text="question").wait_for()
    await page.click(".modal .icon-btn")

    # Import a file: its entries join the list; a broken file says why and adds nothing.
    await page.locator("#faq-import-file").set_input_files(
        files=[{"name": "faq.yaml", "mimeType": "application/yaml", "buffer": IMPORTED.encode()}]
    )
    await page.locator(".faq-entry", has_text="Do you ship abroad?").wait_for()
    await page.locator(".toast.success", has_text="درون‌ریزی شد").wait_for()
    await page.locator("#faq-import-file").set_input_files(
        files=[{"name": "bad.yaml", "mimeType": "application/yaml", "buffer": b"- question: ["}]
    )
    await page.locator(".toast.error", has_text="not valid YAML").wait_for()
    assert await page.locator(".faq-entry").count() == 4
    await page.fill("#faq-search", "رمز")
    await page.locator(".faq-entry").first.wait_for()
    await eventually(_count_is(page, ".faq-entry", 1))
    assert "فراموش" in await page.locator(".faq-entry").inner_text()
    await page.fill("#faq-search", "")
    await eventually(_count_is(page, ".faq-entry", 4))
    await page.screenshot(path=str(screenshots / "fa-faq-knowledge-base.png"))

    # Disabling keeps the entry, greyed out.
    await row.locator("input[type=checkbox]").uncheck()
    await page.locator(".faq-entry.inactive", has_text="هزینه ارسال").wait_for()

    # An agent suggested an answer from a conversation; the admin edits and approves it.
    await write(with_bot, "مریم", "maryam@example.com", "برای خرید عمده تخفیف ویژه دارید؟")
    conversation = await conversation_of(boss, "مریم")
    cid = conversation["id"]
    text = "بله، برای بیش از ده عدد ۱۰٪ تخفیف داریم."
    assert (await ali.send("POST", f"/api/v1/conversations/{cid}/messages", {"text": text}))[
        0
    ] == 201
    status, first = await ali.send("POST", f"/api/v1/conversations/{cid}/faq-suggestion", {})
    assert status == 201
    status, second = await ali.send(
        "POST",
        f"/api/v1/conversations/{cid}/faq-suggestion",
        {"question": "قیمت عمده؟", "answer": "تماس بگیرید."},
    )
    assert status == 201

    await page.click("[data-tab=faq_review]")
    card = page.locator(f".faq-suggestion[data-id='{first['id']}']")
    await card.wait_for()
    question = await card.locator("textarea").first.input_value()
    assert question == "برای خرید عمده تخفیف ویژه دارید؟"
    assert await page.locator(".faq-suggestion").count() == 2
    assert "علی رضایی" in await card.inner_text()
    await page.screenshot(path=str(screenshots / "fa-faq-review-queue.png"))
    await card.locator("textarea").first.fill("تخفیف خرید عمده دارید؟")
    await card.locator("[data-action=faq-approve]").click()
    await page.locator(".toast.success", has_text="به پایگاه دانش افزوده شد").wait_for()
    other = page.locator(f".faq-suggestion[data-id='{second['id']}']")
    await other.locator("[data-action=faq-reject]").click()
    await page.locator(".empty-row", has_text="پیشنهادی در انتظار بازبینی نیست").wait_for()

    await page.click("[data-tab=faq]")
    approved = page.locator(".faq-entry", has_text="تخفیف خرید عمده دارید؟")
    await approved.wait_for()
    assert text in await approved.inner_text()
    assert not page.errors


def _count_is(page: Any, selector: str, expected: int) -> Any:
    async def probe() -> bool:
        return bool(await page.locator(selector).count() == expected)

    return probe


async def test_an_agent_sees_the_bot_takes_over_and_offers_an_answer_to_the_faq(
    browser: Any, with_bot: Team, screenshots: Path
) -> None:
    ali = await with_bot.agent("ali@example.com", "علی رضایی")
    await write(with_bot, "رضا کریمی", "reza@example.com", "ساعت کاری فروشگاه چیست؟")
    conversation = await conversation_of(ali, "رضا کریمی")

    async def answered() -> bool:
        _, detail = await ali.get(f"/api/v1/conversations/{conversation['id']}")
        return any(m["author_kind"] == "bot" for m in detail["messages"])

    await eventually(answered)
    page = await login(browser, with_bot.base, "ali@example.com")
    await page.click("[data-view=all]")
    await page.click("[data-status=bot]")
    await open_conversation(page, "رضا کریمی")

    # The bot's turn: its own avatar, label and colour, the entry it answered from and the score.
    turn = page.locator(".msg-bot")
    await turn.wait_for()
    assert "شنبه تا چهارشنبه" in await turn.inner_text()
    assert await turn.locator(".bot-tag").inner_text() == "ربات"
    assert await turn.locator(".avatar.bot").count() == 1
    details = turn.locator(".bot-details[data-kind=answer]")
    await details.locator(".faq-q", has_text="ساعت کاری فروشگاه چیست؟").wait_for()
    assert "٪" in await details.locator(".bot-score").inner_text()
    background = await turn.locator(".bubble").evaluate("n => getComputedStyle(n).backgroundColor")
    customer = page.locator(".msg-in .bubble").first
    assert background != await customer.evaluate("n => getComputedStyle(n).backgroundColor")
    banner = page.locator(".bot-banner")
    assert "این گفتگو با ربات است" in await banner.inner_text()
    await page.screenshot(path=str(screenshots / "fa-thread-bot-turn.png"))

    await banner.locator("[data-action=take-over]").click()
    await banner.wait_for(state="detached")
    await page.locator(".activity", has_text="کارشناس در دست گرفت").wait_for()
    await page.locator(".thread-head .assignee", has_text="علی رضایی").wait_for()
    _, detail = await ali.get(f"/api/v1/conversations/{conversation['id']}")
    assert (detail["status"], detail["assignee_id"]) == ("open", ali.id)

    # A question the bot did not know reaches ali; once ali answers, the page offers to add
    # that answer to the FAQ, pre-filled, and sends it for review.
    question = "آیا برای خرید عمده تخفیف ویژه می‌دهید؟"
    await write(with_bot, "مریم نوری", "maryam@example.com", question)
    await page.click("[data-status=any]")
    await open_conversation(page, "مریم نوری")
    await page.locator(".activity", has_text="پاسخی نداشت").wait_for()
    assert await page.locator(".faq-offer").count() == 0  # nobody has answered yet
    reply = "بله، برای بیش از ده عدد ۱۰٪ تخفیف داریم."
    await page.locator(".composer-input").fill(reply)
    await page.locator(".composer-input").press("Control+Enter")
    offer = page.locator(".faq-offer")
    await offer.locator("[data-action=faq-offer]").click()
    assert await offer.locator("textarea[name=question]").input_value() == question
    assert await offer.locator("textarea[name=answer]").input_value() == reply
    await page.screenshot(path=str(screenshots / "fa-thread-faq-offer.png"))
    await offer.locator("button[type=submit]").click()
    await page.locator(".toast.success", has_text="برای بازبینی فرستاده شد").wait_for()
    await offer.wait_for(state="detached")

    boss = await with_bot.agent("boss@example.com", "مدیر", role="admin", online=False)
    _, queue = await boss.get("/api/v1/faq/suggestions")
    assert [(s["question"], s["answer"]) for s in queue["suggestions"]] == [(question, reply)]
    # Refreshed, the offer does not come back for the same reply.
    await page.reload()
    await page.wait_for_selector(".topbar")
    assert await page.locator(".faq-offer").count() == 0
    assert not page.errors


async def test_the_english_knowledge_base_reads_left_to_right(
    browser: Any, with_bot: Team, screenshots: Path
) -> None:
    await with_bot.agent("boss@example.com", "Boss", role="admin", online=False)
    page = await login(browser, with_bot.base, "boss@example.com")
    await page.click("#lang-switch")
    await page.click("[data-page=admin]")
    await page.click("[data-tab=faq]")
    await page.locator(".faq-entry").first.wait_for()
    assert await page.locator(".admin-title").inner_text() == "Knowledge base"
    assert await page.evaluate("getComputedStyle(document.documentElement).direction") == "ltr"
    await page.screenshot(path=str(screenshots / "en-faq-knowledge-base.png"))
    assert not page.errors
