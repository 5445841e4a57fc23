"""The FAQ bot's API: admins edit, search, import and export the knowledge base and review
agents' suggestions; agents read entries, suggest one from a conversation they see, and take a
conversation over from the bot. Every route is role- and CSRF-checked; bad input is a clear 4xx
with nothing stored."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from sqlalchemy import func, select

from storage.config import StorageConfig
from storage.models import Event, FaqEntry, FaqSuggestion
from tests.fixtures.stack import Agent, Stack, eventually, running_stack

ENTRIES = "/api/v1/faq/entries"
SHOP_SECRET = "shop-site-shared-secret-0123"
SHIPPING = {
    "question": "هزینه ارسال سفارش چقدر است؟",
    "alternatives": ["هزینه پست", " هزینه پست ", "  ", "کرایه ارسال"],
    "answer": "ارسال سفارش‌های بالای ۵۰۰ هزار تومان رایگان است.",
    "language": "fa",
    "tags": ["ارسال"],
}
KNOWLEDGE = """\
- question: ساعت کاری فروشگاه چیست؟
  alternatives: [چه ساعتی جواب می‌دهید]
  answer: شنبه تا چهارشنبه از ۹ تا ۱۷ پاسخگوییم.
  language: fa
  tags: [ساعت کاری]
- question: How do I reset my password?
  answer: Use "Forgot password" on the login page.
  language: en
"""


def config(tmp_path: Path, *, bot: bool = False) -> dict[str, Any]:
    """A team of one (ali), a web form in that team; the bot's knowledge base a file of ours."""
    kb = tmp_path / "kb.yaml"
    kb.write_text(KNOWLEDGE, encoding="utf-8")
    channel: dict[str, Any] = {"type": "webform", "name": "contact", "team": "support"}
    if bot:  # a shop's site through the API channel: a reply-less web form gets no bot
        channel = {
            "type": "api",
            "name": "contact",
            "team": "support",
            "bot": "faq",
            "secret": "${PISHKHAN_TEST_SHOP_SECRET}",
            "callback_url": "http://127.0.0.1:9/pishkhan/replies",
        }
    return {
        "routing": {
            "teams": [{"name": "support", "members": ["ali@example.com"]}],
            "default_team": "support",
            "bot": {"knowledge_base": str(kb if bot else tmp_path / "none.yaml")},
        },
        "channels": [channel],
    }


@pytest_asyncio.fixture
async def stack(storage_config: StorageConfig, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(storage_config, config(tmp_path)) as running:
        yield running


@pytest_asyncio.fixture
async def bot_stack(
    storage_config: StorageConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    monkeypatch.setenv("PISHKHAN_TEST_SHOP_SECRET", SHOP_SECRET)
    async with running_stack(storage_config, config(tmp_path, bot=True)) as running:
        yield running


async def say(stack: Stack, fields: dict[str, str]) -> tuple[int, Any]:
    """A customer writes on the shop's site (the API channel, signed as the shop signs)."""
    sender = {"id": fields["email"], "name": fields["name"], "email": fields["email"]}
    message = {"id": uuid.uuid4().hex, "sender": sender, "text": fields["message"]}
    body = json.dumps(message, ensure_ascii=False).encode()
    signature = "sha256=" + hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with stack.http.post(
        f"{stack.base}/channels/api/contact/messages",
        data=body,
        headers={"X-Pishkhan-Signature": signature, "Content-Type": "application/json"},
    ) as response:
        return response.status, await response.text()


async def join_support(boss: Agent, agent: Agent) -> None:
    """The config names ali in `support`, but ali did not exist when the stack started."""
    _, teams = await boss.get("/api/v1/teams")
    support = next(t["id"] for t in teams["teams"] if t["name"] == "support")
    status, _ = await boss.send("PATCH", f"/api/v1/agents/{agent.id}", {"team_ids": [support]})
    assert status == 200


async def count(stack: Stack, model: type[Any]) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def upload(
    agent: Agent, path: str, body: bytes | aiohttp.FormData, content_type: str | None = None
) -> tuple[int, Any]:
    headers = {"X-CSRF-Token": agent.csrf}
    if content_type:
        headers["Content-Type"] = content_type
    data = io.BytesIO(body) if isinstance(body, bytes) else body
    async with agent.http.post(agent.base + path, data=data, headers=headers) as response:
        return response.status, await response.json()


async def test_admins_add_search_edit_disable_and_delete_entries(stack: Stack) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    ali = await stack.add_agent("ali@example.com", online=False)

    status, entry = await boss.send("POST", ENTRIES, SHIPPING)
    assert status == 201, entry
    assert entry["alternatives"] == ["هزینه پست", "کرایه ارسال"]  # trimmed, no blanks or repeats
    assert (entry["enabled"], entry["updated_by"], entry["tags"]) == (True, boss.id, ["ارسال"])
    _, other = await boss.send(
        "POST",
        ENTRIES,
        {"question": "  Do you ship abroad? ", "answer": "Not yet.", "language": "en"},
    )
    assert other["question"] == "Do you ship abroad?" and other["alternatives"] == []

    # Agents read; search is Persian-normalized (Arabic yeh and kaf, Persian digits).
    status, found = await ali.get(ENTRIES, params={"q": "هزينه ارسال"})
    assert status == 200 and [e["id"] for e in found["entries"]] == [entry["id"]]
    assert found["total"] == 1
    _, found = await ali.get(ENTRIES, params={"q": "500"})
    assert [e["id"] for e in found["entries"]] == [entry["id"]]
    _, found = await ali.get(ENTRIES, params={"language": "en"})
    assert [e["id"] for e in found["entries"]] == [other["id"]]
    assert (await ali.get(f"{ENTRIES}/{entry['id']}"))[1]["question"] == SHIPPING["question"]

    path = f"{ENTRIES}/{entry['id']}"
    status, changed = await boss.send("PATCH", path, {"enabled": False, "tags": []})
    assert status == 200 and (changed["enabled"], changed["tags"]) == (False, [])
    assert changed["question"] == SHIPPING["question"]
    _, found = await ali.get(ENTRIES, params={"enabled": "true"})
    assert [e["id"] for e in found["entries"]] == [other["id"]]
    status, changed = await boss.send("PATCH", path, {"answer": "رایگان است.", "enabled": True})
    assert (status, changed["answer"], changed["enabled"]) == (200, "رایگان است.", True)

    assert await boss.send("DELETE", path) == (200, {"deleted": entry["id"]})
    assert (await ali.get(path))[0] == 404
    assert (await boss.send("PATCH", path, {"enabled": True}))[0] == 404
    assert (await boss.send("DELETE", path))[0] == 404
    _, listing = await ali.get(ENTRIES)
    assert [e["id"] for e in listing["entries"]] == [other["id"]]

    async with stack.sessions() as session:
        types = (
            await session.scalars(
                select(Event.type).where(Event.type.like("faq.%")).order_by(Event.id)
            )
        ).all()
    assert types == [
        "faq.entry_created",
        "faq.entry_created",
        "faq.entry_updated",
        "faq.entry_updated",
        "faq.entry_deleted",
    ]


async def test_entry_routes_check_role_csrf_and_input(stack: Stack) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    ali = await stack.add_agent("ali@example.com", online=False)
    _, entry = await boss.send("POST", ENTRIES, SHIPPING)
    path = f"{ENTRIES}/{entry['id']}"

    for method, url, body in (
        ("POST", ENTRIES, SHIPPING),
        ("PATCH", path, {"enabled": False}),
        ("DELETE", path, None),
        ("POST", "/api/v1/faq/import", None),
        ("GET", "/api/v1/faq/export", None),
        ("GET", "/api/v1/faq/suggestions", None),
        ("POST", "/api/v1/faq/suggestions/1/approve", {}),
        ("POST", "/api/v1/faq/suggestions/1/reject", None),
    ):
        status, answer = await ali.send(method, url, body)
        assert (status, answer) == (403, {"error": "admins only"}), (method, url)
    async with stack.http.get(stack.base + ENTRIES) as response:
        assert response.status == 401
    async with boss.http.post(boss.base + ENTRIES, json=SHIPPING) as response:
        assert response.status == 403  # a cookie session without the CSRF header

    long = "ب" * 10_001
    bad = [
        ("POST", ENTRIES, {**SHIPPING, "question": None}, 422, "question: Input should be"),
        ("POST", ENTRIES, {"answer": "x", "language": "fa"}, 422, "question: Field required"),
        ("POST", ENTRIES, {**SHIPPING, "question": "   "}, 422, "question: Value error"),
        ("POST", ENTRIES, {**SHIPPING, "answer": ""}, 422, "answer: String should have at least"),
        ("POST", ENTRIES, {**SHIPPING, "answer": long}, 422, "answer: String should have at most"),
        ("POST", ENTRIES, {**SHIPPING, "language": "de"}, 422, "language: Input should be"),
        ("POST", ENTRIES, {**SHIPPING, "alternatives": "x"}, 422, "alternatives: Input should"),
        ("POST", ENTRIES, {**SHIPPING, "tags": ["x" * 101]}, 422, "tags.0: String should"),
        ("POST", ENTRIES, {**SHIPPING, "id": 5}, 422, "id: Extra inputs"),
        ("POST", ENTRIES, {**SHIPPING, "answer": "a\x00b"}, 422, "text must not contain NUL"),
        ("POST", ENTRIES, [SHIPPING], 422, "Input should be a valid dictionary"),
        ("PATCH", path, {"question": None}, 422, "question may not be null"),
        ("PATCH", path, {"enabled": "maybe"}, 422, "enabled: Input should be a valid boolean"),
        ("PATCH", f"{ENTRIES}/abc", {"enabled": True}, 404, "not found"),
        ("PATCH", f"{ENTRIES}/99999", {"enabled": True}, 404, "not found: FAQ entry 99999"),
        ("DELETE", f"{ENTRIES}/0", None, 404, "not found"),
    ]
    for method, url, body, expected, reason in bad:
        status, answer = await boss.send(method, url, body)
        assert status == expected, (method, url, body, answer)
        assert reason in answer["error"], (answer, reason)
    async with boss.http.post(
        boss.base + ENTRIES, data="{not json", headers={"X-CSRF-Token": boss.csrf}
    ) as response:
        assert response.status == 415
    for query, reason in (
        ({"language": "de"}, "language: fa or en"),
        ({"enabled": "perhaps"}, "enabled: true or false"),
        ({"limit": "-1"}, "limit: a whole number"),
    ):
        status, answer = await ali.get(ENTRIES, params=query)
        assert (status, answer) == (400, {"error": reason})
    assert await count(stack, FaqEntry) == 1
    assert (await ali.get(path))[1]["enabled"] is True


async def test_import_and_export_round_trip_all_or_nothing(stack: Stack) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    _, kept = await boss.send("POST", ENTRIES, SHIPPING)

    status, result = await upload(
        boss, "/api/v1/faq/import", KNOWLEDGE.encode(), "application/yaml"
    )
    assert status == 200, result
    assert (result["created"], result["updated"], result["deleted"]) == (2, 0, 0)
    async with boss.http.get(boss.base + "/api/v1/faq/export") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/yaml")
        assert "faq.yaml" in response.headers["Content-Disposition"]
        exported = yaml.safe_load(await response.text())
    assert [e["question"] for e in exported] == [
        SHIPPING["question"],
        "ساعت کاری فروشگاه چیست؟",
        "How do I reset my password?",
    ]
    # Edited in the file and sent back as a form upload, replacing everything: the same ids.
    exported[0]["answer"] = "همیشه رایگان."
    del exported[2]
    form = aiohttp.FormData()
    form.add_field(
        "file",
        yaml.safe_dump(exported, allow_unicode=True).encode(),
        filename="faq.yaml",
        content_type="application/yaml",
    )
    status, result = await upload(boss, "/api/v1/faq/import?replace=true", form)
    assert status == 200, result
    assert (result["created"], result["updated"], result["deleted"]) == (0, 2, 1)
    _, listing = await boss.get(ENTRIES)
    first = listing["entries"][0]
    assert (first["id"], first["answer"]) == (kept["id"], "همیشه رایگان.")
    assert listing["total"] == 2
    assert all(e["updated_by"] == boss.id for e in listing["entries"])

    before = (await boss.get(ENTRIES))[1]
    bad = [
        (b"- question: [unclosed", "application/yaml", 422, "nothing imported: not valid YAML"),
        (b"question: x\nanswer: y", "application/yaml", 422, "must be a list of entries"),
        (
            b"- question: ok\n  answer: ok\n  language: fa\n- question: ''\n  answer: b\n"
            b"  language: de\n",
            "text/yaml",
            422,
            "entry 2: 'question' must be a non-empty text",
        ),
        (b"- question: x\n  answer: y\n  language: fa\n  id: 99999\n", "text/yaml", 422, "99999"),
        ("- question: سلام".encode("utf-16"), "application/yaml", 400, "not UTF-8"),
        (b"   \n", "application/yaml", 422, "the file is empty"),
        (b"[]", "application/json", 415, "send the YAML file"),
        (b"x" * (1024 * 1024 + 1), "application/yaml", 413, "larger than"),
    ]
    for body, content_type, expected, reason in bad:
        status, answer = await upload(boss, "/api/v1/faq/import", body, content_type)
        assert status == expected, (body[:40], answer)
        assert reason in answer["error"], (answer, reason)
    status, answer = await upload(
        boss,
        "/api/v1/faq/import",
        b"- question: ''\n  answer: ''\n  language: de\n",
        "application/yaml",
    )
    assert len(answer["problems"]) == 3  # every problem, not just the first
    assert (await boss.get(ENTRIES))[1] == before  # nothing imported half-way


async def _conversation(boss: Agent, name: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        _, body = await boss.get("/api/v1/conversations", params={"view": "all", "status": ""})
        return next((c for c in body["conversations"] if c["customer"]["name"] == name), None)

    return await eventually(find)


async def _detail(agent: Agent, conversation_id: int) -> dict[str, Any]:
    status, detail = await agent.get(f"/api/v1/conversations/{conversation_id}")
    assert status == 200, detail
    return detail  # type: ignore[no-any-return]


async def test_an_agent_suggests_an_entry_and_an_admin_reviews_it(bot_stack: Stack) -> None:
    stack = bot_stack
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    ali = await stack.add_agent("ali@example.com")
    sara = await stack.add_agent("sara@example.com", online=False)  # in no team
    await join_support(boss, ali)
    question = "آیا برای خرید عمده تخفیف ویژه می‌دهید؟"
    status, _ = await say(
        stack, {"name": "مریم", "email": "maryam@example.com", "message": question}
    )
    assert status in (200, 201, 202)
    conversation = await _conversation(boss, "مریم")
    cid = conversation["id"]

    async def handed_over() -> dict[str, Any] | None:
        detail = await _detail(ali, cid)
        return detail if detail["assignee_id"] == ali.id else None

    detail = await eventually(handed_over)  # the bot did not know: ali has it
    assert detail["status"] == "open"
    bot_turns = [m for m in detail["messages"] if m["author_kind"] == "bot"]
    assert bot_turns and bot_turns[-1]["metadata"]["bot"]["kind"] in ("unknown", "handover")
    reasons = [a["data"].get("reason") for a in detail["activities"]]
    assert "unknown" in reasons or "misses" in reasons
    answer = "بله، برای خرید بیش از ده عدد ۱۰٪ تخفیف می‌دهیم."
    assert (await ali.send("POST", f"/api/v1/conversations/{cid}/messages", {"text": answer}))[
        0
    ] == 201

    suggest = f"/api/v1/conversations/{cid}/faq-suggestion"
    for body, expected, reason in (
        ({"question": "  "}, 422, "question: Value error"),
        ({"answer": "x" * 10_001}, 422, "answer: String should have at most"),
        ({"language": "fa"}, 422, "language: Extra inputs"),
        ("text", 422, "Input should be a valid dictionary"),
    ):
        status, answer_ = await ali.send("POST", suggest, body)
        assert (status, reason in answer_["error"]) == (expected, True), answer_
    assert (await sara.send("POST", suggest, {}))[0] == 404  # not a conversation sara sees
    assert (await ali.send("POST", "/api/v1/conversations/99999/faq-suggestion", {}))[0] == 404
    assert await count(stack, FaqSuggestion) == 0

    status, suggestion = await ali.send("POST", suggest, {})  # the bot's question, ali's reply
    assert status == 201, suggestion
    assert (suggestion["question"], suggestion["answer"]) == (question, answer)
    assert (suggestion["language"], suggestion["status"]) == ("fa", "pending")
    assert suggestion["suggested_by"] == ali.id and suggestion["conversation_id"] == cid
    status, second = await ali.send(
        "POST", suggest, {"question": "Bulk discount?", "answer": "Yes, 10%."}
    )
    assert status == 201 and second["language"] == "en"

    status, queue = await boss.get("/api/v1/faq/suggestions")
    assert status == 200 and queue["pending"] == 2
    assert [s["id"] for s in queue["suggestions"]] == [suggestion["id"], second["id"]]
    status, approved = await boss.send(
        "POST",
        f"/api/v1/faq/suggestions/{suggestion['id']}/approve",
        {"question": "تخفیف خرید عمده دارید؟", "alternatives": ["خرید عمده"], "tags": ["فروش"]},
    )
    assert status == 200, approved
    assert (approved["status"], approved["reviewed_by"]) == ("approved", boss.id)
    _, entry = await ali.get(f"{ENTRIES}/{approved['entry_id']}")
    assert (entry["question"], entry["answer"], entry["enabled"]) == (
        "تخفیف خرید عمده دارید؟",
        answer,
        True,
    )
    assert (entry["alternatives"], entry["tags"]) == (["خرید عمده"], ["فروش"])
    assert entry["language"] == "fa"
    again = await boss.send("POST", f"/api/v1/faq/suggestions/{suggestion['id']}/approve", {})
    assert again[0] == 409 and "approved already" in again[1]["error"]

    path = f"/api/v1/faq/suggestions/{second['id']}"
    assert (await boss.send("POST", path + "/approve", {"language": "de"}))[0] == 422
    assert (await boss.send("POST", path + "/approve", {"answer": ""}))[0] == 422
    status, rejected = await boss.send("POST", path + "/reject")
    assert (status, rejected["status"], rejected["entry_id"]) == (200, "rejected", None)
    assert (await boss.send("POST", path + "/approve", {}))[0] == 409
    assert (await boss.send("POST", "/api/v1/faq/suggestions/99999/reject"))[0] == 404
    # The admin may correct the detected language.
    _, third = await ali.send("POST", suggest, {"question": "تخفیف wholesale?", "answer": "Yes."})
    status, approved = await boss.send(
        "POST", f"/api/v1/faq/suggestions/{third['id']}/approve", {"language": "en"}
    )
    assert (status, approved["language"]) == (200, "en")
    assert (await ali.get(f"{ENTRIES}/{approved['entry_id']}"))[1]["language"] == "en"
    assert (await boss.get("/api/v1/faq/suggestions"))[1] == {"suggestions": [], "pending": 0}
    _, done = await boss.get("/api/v1/faq/suggestions", params={"status": "rejected"})
    assert [s["id"] for s in done["suggestions"]] == [second["id"]]
    assert (await boss.get("/api/v1/faq/suggestions", params={"status": "x"}))[0] == 400


async def test_an_agent_takes_a_conversation_over_from_the_bot(bot_stack: Stack) -> None:
    stack = bot_stack
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    ali = await stack.add_agent("ali@example.com")
    sara = await stack.add_agent("sara@example.com")  # in no team
    await join_support(boss, ali)
    status, _ = await say(
        stack,
        {"name": "رضا", "email": "reza@example.com", "message": "ساعت کاری فروشگاه چیست؟"},
    )
    assert status in (200, 201, 202)
    conversation = await _conversation(boss, "رضا")
    cid = conversation["id"]

    async def answered() -> dict[str, Any] | None:
        detail = await _detail(boss, cid)
        turns = [m for m in detail["messages"] if m["author_kind"] == "bot"]
        return detail if turns else None

    detail = await answered() or await eventually(answered)
    assert (detail["status"], detail["assignee_id"]) == ("bot", None)
    turn = next(m for m in detail["messages"] if m["author_kind"] == "bot")
    assert turn["metadata"]["bot"]["kind"] == "answer" and turn["author"] is None
    assert turn["metadata"]["bot"]["score"] > 0.5
    assert "شنبه تا چهارشنبه" in turn["text"]

    take = f"/api/v1/conversations/{cid}/take-over"
    assert (await sara.send("POST", take))[0] == 404  # a support conversation: not hers
    async with ali.http.post(ali.base + take) as response:
        assert response.status == 403  # no CSRF header
    assert (await ali.send("POST", "/api/v1/conversations/99999/take-over"))[0] == 404
    status, taken = await ali.send("POST", take)
    assert status == 200, taken
    assert (taken["status"], taken["assignee_id"]) == ("open", ali.id)
    detail = await _detail(ali, cid)
    assert detail["metadata"]["bot"]["silenced"] is True
    handovers = [a for a in detail["activities"] if a["type"] == "conversation.handed_over"]
    assert [(a["data"]["reason"], a["actor"]["id"]) for a in handovers] == [("agent", ali.id)]

    # The bot stays quiet from now on: the customer's next question reaches ali only.
    await say(
        stack,
        {"name": "رضا", "email": "reza@example.com", "message": "ساعت کاری فروشگاه چیست؟"},
    )

    async def second_question() -> dict[str, Any] | None:
        detail = await _detail(ali, cid)
        incoming = [m for m in detail["messages"] if m["direction"] == "in"]
        return detail if len(incoming) == 2 else None

    detail = await eventually(second_question)
    assert len([m for m in detail["messages"] if m["author_kind"] == "bot"]) == 1
    status, again = await ali.send("POST", take)  # twice is harmless
    assert (status, again["assignee_id"]) == (200, ali.id)


async def test_the_routes_are_described_in_the_openapi_document(stack: Stack) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    status, spec = await boss.get("/api/v1/openapi.json")
    assert status == 200
    paths = spec["paths"]
    assert paths["/api/v1/faq/entries"]["post"]["x-role"] == "admin"
    assert paths["/api/v1/faq/entries"]["get"]["x-role"] == "agent"
    assert "multipart/form-data" in paths["/api/v1/faq/import"]["post"]["requestBody"]["content"]
    assert paths["/api/v1/conversations/{id}/take-over"]["post"]["x-role"] == "agent"
