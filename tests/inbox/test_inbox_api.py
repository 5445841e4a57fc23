"""The inbox web app's API: list views with unread counts, opening a conversation, notes with
mentions and notifications, canned responses, labels, preferences — with roles and CSRF."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from storage.config import StorageConfig
from storage.models import Agent as AgentRow
from storage.models import Message, Notification
from tests.fixtures.stack import Agent, Stack, eventually, running_stack

# Real Persian as customers type it (from the seed documents, ZWNJs lost as people lose them).
ORDER_LATE = "سفارشم هنوز نرسیده است و پشتیبانی پاسخگو نیست"
AFTER_SALES = "توجه به مشتری پس از فروش کالا و خدمات به او از طریق ارائه خدمات و پشتیبانی فعال"
WARRANTY = "دستگاه خراب است؛ گارانتی دارد؟"


async def listing(agent: Agent, query: str = "") -> dict[str, Any]:
    status, body = await agent.get("/api/v1/conversations" + query)
    assert status == 200, body
    return body


async def conversations_of(agent: Agent, count: int, query: str = "") -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        items = (await listing(agent, query))["conversations"]
        return items if len(items) >= count else None

    return await eventually(probe)


async def test_views_filters_unread_counts_and_marking_read(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    await stack.post_form(
        "contact", {"name": "مریم", "email": "maryam@example.com", "message": ORDER_LATE}
    )
    await stack.post_form(
        "contact", {"name": "رضا", "email": "reza@example.com", "message": WARRANTY}
    )
    first, second = await conversations_of(ali, 2)

    assert second["preview"] == ORDER_LATE and first["preview"] == WARRANTY  # newest first
    assert first["assignee"] == {"id": ali.id, "name": "ali"}
    assert first["unread"] == 1 and first["labels"] == []
    assert first["customer"]["name"] == "رضا" and first["waiting_since"] and first["created_at"]
    body = await listing(ali)
    assert body["counts"] == {"mine": 2, "unassigned": 0, "teams": 0, "all": 2}
    assert (await listing(boss))["counts"] == {"mine": 0, "unassigned": 0, "teams": 0, "all": 2}
    assert (await listing(ali, "?view=unassigned"))["conversations"] == []
    assert len((await listing(boss, "?view=mine"))["conversations"]) == 0

    status, read = await ali.send("POST", f"/api/v1/conversations/{first['id']}/read")
    assert status == 200 and read["unread"] == 0
    body = await listing(ali)
    assert [c["unread"] for c in body["conversations"]] == [0, 1]
    assert body["counts"]["mine"] == 1
    assert (await listing(boss))["counts"]["all"] == 2  # read markers are per agent

    # the customer writes again: unread again
    await stack.post_form("contact", {"email": "reza@example.com", "message": AFTER_SALES})

    async def unread_again() -> dict[str, Any] | None:
        item = (await listing(ali))["conversations"][0]
        return item if item["unread"] == 1 and item["id"] == first["id"] else None

    await eventually(unread_again)

    # labels filter, status filter, channel filter
    await ali.send("PUT", f"/api/v1/conversations/{second['id']}/labels", {"add": ["گارانتی"]})
    labelled = (await listing(ali, "?label=گارانتی"))["conversations"]
    assert [c["id"] for c in labelled] == [second["id"]] and labelled[0]["labels"] == ["گارانتی"]
    assert (await listing(ali, "?status=resolved"))["conversations"] == []
    assert len((await listing(ali, "?channel=contact&status=open"))["conversations"]) == 2
    assert (await listing(ali, "?channel=telegram"))["conversations"] == []


async def test_paging_by_activity_and_by_waiting_time(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    for n, email in enumerate(("a@example.com", "b@example.com", "c@example.com")):
        await stack.post_form("contact", {"email": email, "message": f"{ORDER_LATE} {n}"})
    newest, middle, oldest = await conversations_of(ali, 3)
    await ali.send("POST", f"/api/v1/conversations/{oldest['id']}/messages", {"text": "بررسی شد"})

    page = await listing(ali, "?limit=2")
    assert [c["id"] for c in page["conversations"]] == [oldest["id"], newest["id"]]
    rest = await listing(ali, f"?limit=2&before={page['next_before']}")
    assert [c["id"] for c in rest["conversations"]] == [middle["id"]]
    assert rest["next_before"] is None

    # waiting longest first; the one answered (not waiting) comes last
    seen: list[int] = []
    cursor = ""
    while True:
        page = await listing(ali, f"?sort=waiting&limit=1{cursor}")
        seen += [c["id"] for c in page["conversations"]]
        if page["next_before"] is None:
            break
        cursor = f"&before={page['next_before']}"
    assert seen == [middle["id"], newest["id"], oldest["id"]]


async def test_list_refuses_bad_queries_clearly(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    for query in (
        "?view=everything",
        "?status=closed",
        "?sort=name",
        "?limit=abc",
        "?limit=-1",
        "?team=x",
        "?before=yesterday",
        "?before=2026-01-01T00:00:00|1",  # a naive time
        "?sort=waiting&before=2026-01-01T00:00:00%2B00:00|1",  # another order's cursor
        "?label=" + "ب" * 101,
    ):
        status, body = await ali.get("/api/v1/conversations" + query)
        assert status == 400, (query, body)
        assert body["error"]
    status, _ = await ali.get("/api/v1/conversations?limit=5000")
    assert status == 200  # capped at 200, not refused
    async with stack.http.get(stack.base + "/api/v1/conversations") as response:
        assert response.status == 401


async def test_opening_shows_authors_sanitized_html_attachments_and_activity(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    sara = await stack.add_agent("sara@example.com")
    await stack.post_form(
        "contact", {"name": "مریم", "email": "m@example.com", "message": WARRANTY}
    )
    [item] = await conversations_of(ali, 1)
    path = f"/api/v1/conversations/{item['id']}"
    async with stack.sessions.begin() as session:
        session.add(
            Message(
                conversation_id=item["id"],
                channel="contact",
                direction="in",
                author_kind="customer",
                text="تصویر پیوست",
                html='<p>سلام<script>alert(1)</script><img src="x" onerror="alert(2)"></p>',
                attachments={
                    "files": [
                        {
                            "filename": "فاکتور.pdf",
                            "content_type": "application/pdf",
                            "size": 9,
                            "url": "javascript:alert(3)",
                        },
                        {
                            "filename": "a.png",
                            "content_type": "image/png",
                            "size": 3,
                            "url": "https://files.example.com/a.png",
                        },
                    ]
                },
                metadata_={},
            )
        )
    await ali.send("POST", path + "/messages", {"text": "در حال بررسی است"})
    await ali.send("PUT", path + "/assignment", {"agent_id": sara.id})
    await sara.send("PUT", path + "/labels", {"add": ["گارانتی"]})
    await sara.send("PUT", path + "/status", {"status": "resolved"})

    status, detail = await sara.get(path)
    assert status == 200
    customer_message, html_message, reply = detail["messages"]
    assert customer_message["author"] == {"id": detail["customer"]["id"], "name": "مریم"}
    assert reply["author"] == {"id": ali.id, "name": "ali"}
    assert "<script" not in html_message["html"] and "onerror" not in html_message["html"]
    assert "سلام" in html_message["html"]
    assert html_message["attachments"] == [
        {"name": "فاکتور.pdf", "content_type": "application/pdf", "size": 9, "url": ""},
        {
            "name": "a.png",
            "content_type": "image/png",
            "size": 3,
            "url": "https://files.example.com/a.png",
        },
    ]
    assert detail["assignee"] == {"id": sara.id, "name": "sara"}
    assert detail["labels"] == ["گارانتی"] and detail["status"] == "resolved"
    assert detail["unread"] == 2  # sara has read neither of the customer's messages
    types = [a["type"] for a in detail["activities"]]
    assert "message.created" not in types and "notification.created" not in types
    assert types[-3:] == [
        "conversation.assigned",
        "conversation.labels_changed",
        "conversation.status_changed",
    ]
    transfer = detail["activities"][-3]
    assert transfer["actor"] == {"id": ali.id, "name": "ali"}
    assert "conversation" not in transfer["data"]
    profile = detail["customer"]
    assert profile["contact_points"] == [{"kind": "email", "value": "m@example.com"}]
    assert profile["owner"] == {"id": ali.id, "name": "ali"}
    assert profile["channels"] == ["contact"]
    assert [c["id"] for c in profile["conversations"]] == [item["id"]]


async def test_a_note_notifies_who_it_mentions_and_an_assignment_notifies_the_assignee(
    stack: Stack,
) -> None:
    ali = await stack.add_agent("ali@example.com")
    sara = await stack.add_agent("sara@example.com", online=False)
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    await stack.post_form("contact", {"email": "m@example.com", "message": ORDER_LATE})
    [item] = await conversations_of(ali, 1)
    path = f"/api/v1/conversations/{item['id']}"

    note = "@sara لطفاً پیگیری کن، @ali خودم هستم"
    status, created = await ali.send(
        "POST", path + "/messages", {"text": note, "private": True, "mentions": [boss.id]}
    )
    assert status == 201 and created["private"]
    status, sara_inbox = await sara.get("/api/v1/notifications?unread=1")
    assert status == 200
    [mention] = sara_inbox["notifications"]
    assert mention["kind"] == "mention" and mention["conversation_id"] == item["id"]
    assert mention["message_id"] == created["id"] and mention["text"] == note
    assert mention["actor"] == {"id": ali.id, "name": "ali"} and mention["read_at"] is None
    assert len((await boss.get("/api/v1/notifications"))[1]["notifications"]) == 1
    assert (await ali.get("/api/v1/notifications"))[1]["notifications"] == []  # not oneself

    _, events = await ali.get(path + "/events")
    notified = [e["data"] for e in events["events"] if e["type"] == "notification.created"]
    assert sorted(d["agent_id"] for d in notified) == sorted([sara.id, boss.id])

    # another agent cannot read sara's notification; sara can
    status, _ = await boss.send("POST", f"/api/v1/notifications/{mention['id']}/read")
    assert status == 404
    status, _ = await sara.send("POST", f"/api/v1/notifications/{mention['id']}/read")
    assert status == 200
    assert (await sara.get("/api/v1/notifications?unread=1"))[1]["notifications"] == []
    assert (await sara.get("/api/v1/notifications"))[1]["notifications"][0]["read_at"]

    # assigned by someone else: notified; assigning oneself: not
    await ali.send("PUT", path + "/assignment", {"agent_id": sara.id})
    await sara.send("PUT", path + "/assignment", {"agent_id": sara.id})
    _, unread = await sara.get("/api/v1/notifications?unread=1")
    assert [n["kind"] for n in unread["notifications"]] == ["assigned"]
    status, done = await sara.send("POST", "/api/v1/notifications/read-all")
    assert status == 200 and done == {"read": 1}
    assert (await sara.get("/api/v1/notifications?unread=1"))[1]["notifications"] == []


async def test_bad_notes_are_refused_with_nothing_written(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    await stack.post_form("contact", {"email": "m@example.com", "message": ORDER_LATE})
    [item] = await conversations_of(ali, 1)
    path = f"/api/v1/conversations/{item['id']}/messages"

    async def counts() -> tuple[int, int]:
        async with stack.sessions() as session:
            messages = await session.scalar(select(func.count()).select_from(Message))
            notes = await session.scalar(select(func.count()).select_from(Notification))
        return messages or 0, notes or 0

    before = await counts()
    for body, expected in (
        ({"text": "یادداشت", "private": True, "mentions": [999_999]}, 404),
        ({"text": "پاسخ", "mentions": [ali.id]}, 422),  # mentions only in a private note
        ({"text": "یادداشت", "private": True, "mentions": ["sara"]}, 422),
        ({"text": "یادداشت", "private": True, "mentions": [0]}, 422),
        ({"text": "یادداشت", "private": True, "mentions": list(range(1, 60))}, 422),
        ({"text": "", "private": True}, 422),
        ({"text": "x" * 100_001, "private": True}, 422),
    ):
        status, answer = await ali.send("POST", path, body)
        assert status == expected, (body, answer)
    status, _ = await ali.send("POST", "/api/v1/conversations/999999/messages", {"text": "x"})
    assert status == 404
    status, _ = await ali.send("POST", "/api/v1/conversations/999999/read")
    assert status == 404
    status, _ = await ali.send("POST", "/api/v1/notifications/999999/read")
    assert status == 404
    assert await counts() == before


async def test_canned_responses_agents_read_admins_write(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com", online=False)
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    new = {"shortcut": "سلام", "title": "خوشامد", "text": "سلام، چطور می‌توانم کمک کنم؟"}
    status, _ = await ali.send("POST", "/api/v1/canned-responses", new)
    assert status == 403
    status, created = await boss.send("POST", "/api/v1/canned-responses", new)
    assert status == 201 and created["shortcut"] == "سلام"
    status, _ = await boss.send("POST", "/api/v1/canned-responses", new)
    assert status == 409
    for bad in (
        {**new, "shortcut": "two words"},
        {**new, "shortcut": ""},
        {**new, "text": ""},
        {**new, "extra": 1},
        {"shortcut": "x"},
    ):
        status, _ = await boss.send("POST", "/api/v1/canned-responses", bad)
        assert status == 422, bad
    status, listed = await ali.get("/api/v1/canned-responses")
    assert status == 200 and listed == {"canned_responses": [created]}

    path = f"/api/v1/canned-responses/{created['id']}"
    status, _ = await ali.send("PATCH", path, {"title": "x"})
    assert status == 403
    status, changed = await boss.send("PATCH", path, {"shortcut": "greet", "title": "سلام"})
    assert status == 200 and changed["shortcut"] == "greet" and changed["text"] == new["text"]
    status, _ = await boss.send("PATCH", "/api/v1/canned-responses/999999", {"title": "x"})
    assert status == 404
    async with boss.http.delete(boss.base + path) as response:  # no CSRF header
        assert response.status == 403
    status, _ = await ali.send("DELETE", path)
    assert status == 403
    status, _ = await boss.send("DELETE", path)
    assert status == 200
    assert (await ali.get("/api/v1/canned-responses"))[1] == {"canned_responses": []}


async def test_labels_with_colours_agents_read_admins_write(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    status, _ = await ali.send("POST", "/api/v1/labels", {"name": "فوری"})
    assert status == 403
    status, urgent = await boss.send("POST", "/api/v1/labels", {"name": "فوری", "color": "#e11d48"})
    assert status == 201 and urgent["color"] == "#e11d48"
    status, _ = await boss.send("POST", "/api/v1/labels", {"name": "فوری"})
    assert status == 409
    for bad in (
        {"name": "x", "color": "red; background: url(x)"},
        {"name": "   "},
        {"name": "x" * 101},
        {},
    ):
        status, _ = await boss.send("POST", "/api/v1/labels", bad)
        assert status == 422, bad

    await stack.post_form("contact", {"email": "m@example.com", "message": ORDER_LATE})
    [item] = await conversations_of(ali, 1)
    await ali.send("PUT", f"/api/v1/conversations/{item['id']}/labels", {"add": ["فوری", "vip"]})
    _, listed = await ali.get("/api/v1/labels")
    assert [(label["name"], label["color"]) for label in listed["labels"]] == [
        ("vip", ""),
        ("فوری", "#e11d48"),
    ]
    path = f"/api/v1/labels/{urgent['id']}"
    status, renamed = await boss.send("PATCH", path, {"name": "اضطراری", "color": "orange"})
    assert status == 200 and renamed == {"id": urgent["id"], "name": "اضطراری", "color": "orange"}
    vip = next(label for label in listed["labels"] if label["name"] == "vip")
    status, _ = await boss.send("PATCH", path, {"name": "vip"})
    assert status == 409
    assert (await listing(ali))["conversations"][0]["labels"] == ["vip", "اضطراری"]
    status, _ = await boss.send("DELETE", f"/api/v1/labels/{vip['id']}")
    assert status == 200
    assert (await listing(ali))["conversations"][0]["labels"] == ["اضطراری"]
    status, _ = await boss.send("DELETE", f"/api/v1/labels/{vip['id']}")
    assert status == 404


async def test_preferences_keep_the_agents_language(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com", online=False)

    async def locale() -> str:
        async with stack.sessions() as session:
            agent = await session.get(AgentRow, ali.id)
            assert agent is not None
            return agent.locale

    assert await locale() == "fa"
    status, body = await ali.send("PUT", "/api/v1/me/preferences", {"locale": "en"})
    assert status == 200 and body == {"locale": "en"}
    assert await locale() == "en"
    for bad in ({"locale": "de"}, {"locale": None}, {}, {"locale": "fa", "theme": "dark"}):
        status, _ = await ali.send("PUT", "/api/v1/me/preferences", bad)
        assert status == 422
    async with ali.http.put(ali.base + "/api/v1/me/preferences", json={"locale": "fa"}) as response:
        assert response.status == 403  # cookie without the CSRF token
    assert await locale() == "en"


async def test_other_teams_conversations_are_not_found_for_an_agent(
    storage_config: StorageConfig,
) -> None:
    extra = {
        "routing": {"teams": [{"name": "support"}]},
        "channels": [{"type": "webform", "name": "contact", "team": "support"}],
    }
    async with running_stack(storage_config, extra) as stack:
        boss = await stack.add_agent("boss@example.com", role="admin", online=False)
        outsider = await stack.add_agent("out@example.com", online=False)
        await stack.post_form("contact", {"email": "m@example.com", "message": ORDER_LATE})
        [item] = await conversations_of(boss, 1)
        path = f"/api/v1/conversations/{item['id']}"
        assert (await listing(outsider))["counts"] == {
            "mine": 0,
            "unassigned": 0,
            "teams": 0,
            "all": 0,
        }
        assert (await listing(boss))["counts"]["unassigned"] == 1
        for method, suffix, body in (
            ("POST", "/read", None),
            ("POST", "/messages", {"text": "@boss ببین", "private": True}),
            ("PUT", "/labels", {"add": ["x"]}),
            ("PUT", "/assignment", {"agent_id": outsider.id}),
        ):
            status, _ = await outsider.send(method, path + suffix, body)
            assert status == 404, suffix
        status, _ = await outsider.get(path)
        assert status == 404
        assert (await boss.get("/api/v1/notifications"))[1]["notifications"] == []
