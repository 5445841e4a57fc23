"""`GET /api/v1/search`: what an agent finds, what they may not, and what the query may not do."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.models import Team, TeamMember
from tests.fixtures.stack import Agent, Stack, eventually
from tests.storage.test_search import add_conversation


async def search(agent: Agent, query: str, **params: str) -> tuple[int, Any]:
    return await agent.get("/api/v1/search", params={"q": query, **params})


async def test_a_message_is_found_as_soon_as_it_is_stored(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    await stack.post_form(
        "contact",
        {"name": "مريم", "email": "maryam@example.com", "message": "كتابم هنوز نرسيده ۱۲۳۴"},
    )

    async def listed() -> Any:
        _, listing = await ali.get("/api/v1/conversations")
        return listing["conversations"]

    conversation = (await eventually(listed))[0]
    status, found = await search(ali, "کتابم 1234")
    assert status == 200
    [hit] = found["conversations"]
    assert hit["id"] == conversation["id"]
    assert hit["customer"]["name"] == "مريم"
    assert "نرسيده" in hit["snippet"] and hit["message_id"] > 0
    assert found["customers"] == []
    _, found = await search(ali, "مریم")
    assert [c["name"] for c in found["customers"]] == ["مريم"]
    assert found["customers"][0]["contact_points"] == [
        {"kind": "email", "value": "maryam@example.com"}
    ]

    path = f"/api/v1/conversations/{conversation['id']}/messages"
    status, note = await ali.send(
        "POST", path, {"text": "یادداشت: مشتری ویژه‌ است", "private": True}
    )
    assert status == 201
    status, found = await search(ali, "ويژه")
    assert [(h["id"], h["message_id"]) for h in found["conversations"]] == [
        (conversation["id"], note["id"])
    ]


async def test_an_agent_finds_only_conversations_they_may_see(stack: Stack) -> None:
    sara = await stack.add_agent("sara@example.com")
    admin = await stack.add_agent("boss@example.com", role="admin")
    ours, _ = await add_conversation(
        stack.sessions, "شکایت از ارسال", name="Kian Ours", team="ours"
    )
    theirs, _ = await add_conversation(
        stack.sessions, "شکایت از کیفیت", name="Kian Theirs", team="theirs"
    )
    async with stack.sessions.begin() as session:
        ours_id = await session.scalar(select(Team.id).where(Team.name == "ours"))
        assert ours_id is not None
        session.add(TeamMember(team_id=ours_id, agent_id=sara.id))
    sara = await stack.login("sara@example.com")  # a fresh session carries the new team

    _, found = await search(sara, "شکایت")
    assert [h["id"] for h in found["conversations"]] == [ours]
    _, found = await search(sara, "kian")
    assert [c["name"] for c in found["customers"]] == ["Kian Ours"]
    _, found = await search(admin, "شکایت")
    assert [h["id"] for h in found["conversations"]] == [theirs, ours]


BAD_QUERIES = [
    ({}, "q:"),
    ({"q": ""}, "q:"),
    ({"q": "   \t "}, "q:"),
    ({"q": "x" * 201}, "q:"),
    ({"q": "ok", "limit": "0"}, "limit:"),
    ({"q": "ok", "limit": "51"}, "limit:"),
    ({"q": "ok", "limit": "ten"}, "limit:"),
    ({"q": "ok", "limit": "-1"}, "limit:"),
]
SYNTAX = ['"', 'ab"cd', "*", "کتاب*", "NEAR(a b)", "a NEAR b", "(((", ")", "-کتاب", "a OR", "NOT"]
SYNTAX += ["body:x", "^x", "a & b | !c", "x:*", "'", "\\", "\x00", "🙂", "x" * 200]


async def test_bad_queries_are_a_clear_400_and_syntax_is_just_text(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    await add_conversation(stack.sessions, "کتاب NEAR body x")
    for params, problem in BAD_QUERIES:
        status, body = await ali.get("/api/v1/search", params=params)
        assert (status, body["error"][: len(problem)]) == (400, problem), params
    for query in SYNTAX:
        status, body = await search(ali, query)
        assert status == 200, (query, body)
        assert set(body) == {"conversations", "customers"}
    _, body = await search(ali, '"کتاب" NEAR(')
    assert len(body["conversations"]) == 1


async def test_search_is_for_logged_in_agents(stack: Stack) -> None:
    async with stack.http.get(stack.base + "/api/v1/search", params={"q": "x"}) as response:
        assert response.status == 401
