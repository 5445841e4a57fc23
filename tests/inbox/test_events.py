"""The realtime event stream: it ends when its credential or the agent's permissions do, and it
neither skips nor silently truncates events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from sqlalchemy import delete, func, insert, select

from inbox.api import events as events_api
from inbox.api.events import REPLAY_LIMIT
from routing.events import Published
from storage.config import StorageConfig
from storage.models import Event, Session, TeamMember, utcnow
from tests.fixtures.stack import Stack, running_stack

Socket = aiohttp.ClientWebSocketResponse


def events_url(stack: Stack, since: int | None = None) -> str:
    url = stack.base.replace("http", "ws") + "/api/v1/events"
    return url if since is None else f"{url}?since={since}"


async def receive(ws: Socket) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data, message.extra)
    data: dict[str, Any] = json.loads(message.data)
    return data


async def closing(ws: Socket) -> tuple[int, str]:
    """Read until the server closes the stream; its close code and message."""
    while True:
        message = await asyncio.wait_for(ws.receive(), 5)
        if message.type == aiohttp.WSMsgType.CLOSE:
            return message.data, message.extra
        assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data)


async def still_live(stack: Stack, ws: Socket, email: str) -> None:
    """The stream still delivers: a new customer's message arrives on it."""
    await stack.post_form("contact", {"email": email, "message": "هنوز وصل هستی؟"})
    while (await receive(ws))["type"] != "conversation.created":
        pass


async def last_event_id(stack: Stack) -> int:
    async with stack.sessions() as session:
        return await session.scalar(select(func.max(Event.id))) or 0


async def log_events(stack: Stack, count: int) -> list[int]:
    """Append `count` team-less events (visible to everyone) to the log; their ids."""
    rows = [{"type": "test.logged", "data": {"n": i}, "created_at": utcnow()} for i in range(count)]
    async with stack.sessions.begin() as session:
        return sorted(await session.scalars(insert(Event).returning(Event.id), rows))


def published(event_id: int) -> Published:
    return Published(event_id, "test.live", None, None, None, {}, utcnow())


async def test_logging_out_closes_that_sessions_event_stream_only(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    ali_at_home = await stack.login("ali@example.com")
    async with (
        ali.http.ws_connect(events_url(stack)) as office,
        ali_at_home.http.ws_connect(events_url(stack)) as home,
    ):
        status, _ = await ali.send("POST", "/api/v1/auth/logout")
        assert status == 200

        assert await closing(office) == (4001, "logged out")
        await still_live(stack, home, "reza@example.com")


async def test_deactivating_an_agent_closes_all_their_event_streams(stack: Stack) -> None:
    admin = await stack.add_agent("boss@example.com", role="admin", online=False)
    ali = await stack.add_agent("ali@example.com")
    _, created = await ali.send("POST", "/api/v1/me/tokens", {"name": "crm"})
    bearer = {"Authorization": f"Bearer {created['token']}"}
    async with (
        ali.http.ws_connect(events_url(stack)) as browser,
        stack.http.ws_connect(events_url(stack), headers=bearer) as script,
        admin.http.ws_connect(events_url(stack)) as admins,
    ):
        status, _ = await admin.send("PATCH", f"/api/v1/agents/{ali.id}", {"active": False})
        assert status == 200

        assert await closing(browser) == (4001, "account deactivated")
        assert await closing(script) == (4001, "account deactivated")
        await still_live(stack, admins, "reza@example.com")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with ali.http.ws_connect(events_url(stack)):
            pass
    assert refused.value.status == 401


async def test_a_role_change_closes_the_stream_so_it_reopens_under_the_new_role(
    stack: Stack,
) -> None:
    admin = await stack.add_agent("boss@example.com", role="admin", online=False)
    ali = await stack.add_agent("ali@example.com")
    async with ali.http.ws_connect(events_url(stack)) as ws:
        status, _ = await admin.send("PATCH", f"/api/v1/agents/{ali.id}", {"capacity": 3})
        assert status == 200
        await still_live(stack, ws, "reza@example.com")  # capacity is not a permission

        status, _ = await admin.send("PATCH", f"/api/v1/agents/{ali.id}", {"role": "admin"})
        assert status == 200
        assert await closing(ws) == (4002, "role changed; reconnect with since=")
    async with ali.http.ws_connect(events_url(stack)) as ws:
        await still_live(stack, ws, "sara@example.com")


async def test_revoking_a_token_closes_the_streams_it_opened(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    sara = await stack.add_agent("sara@example.com", online=False)
    _, created = await ali.send("POST", "/api/v1/me/tokens", {"name": "crm"})
    _, listed = await ali.get("/api/v1/me/tokens")
    assert [(t["id"], t["name"]) for t in listed["tokens"]] == [(created["id"], "crm")]
    bearer = {"Authorization": f"Bearer {created['token']}"}
    async with (
        stack.http.ws_connect(events_url(stack), headers=bearer) as script,
        ali.http.ws_connect(events_url(stack)) as browser,
    ):
        status, _ = await sara.send("DELETE", f"/api/v1/me/tokens/{created['id']}")
        assert status == 404  # not hers to revoke
        status, _ = await ali.send("DELETE", f"/api/v1/me/tokens/{created['id']}")
        assert status == 200

        assert await closing(script) == (4001, "token revoked")
        await still_live(stack, browser, "reza@example.com")
    status, _ = await ali.send("DELETE", f"/api/v1/me/tokens/{created['id']}")
    assert status == 404
    async with stack.http.get(stack.base + "/api/v1/me", headers=bearer) as response:
        assert response.status == 401


async def test_a_stream_whose_session_ended_elsewhere_closes_at_its_next_check(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_api, "REVALIDATE_SECONDS", 0.1)
    ali = await stack.add_agent("ali@example.com")
    async with ali.http.ws_connect(events_url(stack)) as ws:
        await asyncio.sleep(0.3)  # a few checks pass while the session holds
        await still_live(stack, ws, "reza@example.com")

        # As when the session expires, or the agent logs out through another web node.
        async with stack.sessions.begin() as session:
            await session.execute(delete(Session).where(Session.agent_id == ali.id))

        assert await closing(ws) == (4001, "session or token no longer valid; log in again")


async def test_a_stream_follows_the_agents_new_team_at_its_next_check(
    storage_config: StorageConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_api, "REVALIDATE_SECONDS", 0.1)
    extra = {
        "routing": {"teams": [{"name": "sales"}]},
        "channels": [{"type": "webform", "name": "contact", "team": "sales"}],
    }
    async with running_stack(storage_config, extra) as stack:
        ali = await stack.add_agent("ali@example.com", online=False)  # in no team yet
        _, teams = await ali.get("/api/v1/teams")
        sales = teams["teams"][0]["id"]
        async with ali.http.ws_connect(events_url(stack)) as ws:
            async with stack.sessions.begin() as session:
                await session.execute(insert(TeamMember).values(team_id=sales, agent_id=ali.id))
            await asyncio.sleep(0.5)

            await stack.post_form("contact", {"email": "reza@example.com", "message": "سلام"})
            event = await receive(ws)
        assert (event["type"], event["team_id"], event["assignee_id"]) == (
            "conversation.created",
            sales,
            None,
        )


async def test_live_events_out_of_id_order_are_delivered_and_replayed_ones_are_not_repeated(
    stack: Stack,
) -> None:
    ali = await stack.add_agent("ali@example.com", online=False)
    assert stack.runtime.services is not None
    hub = stack.runtime.services.hub
    since = await last_event_id(stack)
    first, late, third = await log_events(stack, 3)
    # `late` was not committed yet when the agent reconnected: its transaction commits after
    # the one that wrote `third`, and it reaches the stream live, after `third`.
    async with stack.sessions.begin() as session:
        await session.execute(delete(Event).where(Event.id == late))

    async with ali.http.ws_connect(events_url(stack, since)) as ws:
        replayed = [await receive(ws), await receive(ws)]
        await hub.publish([published(third)])  # the replayed one, announced live after all
        await hub.publish([published(late)])
        await hub.publish([published(third + 1)])
        live = [await receive(ws), await receive(ws)]
        await ws.send_str("ping")
        assert (await ws.receive()).data == "pong"  # and nothing else came before it

    assert [(e["id"], e.get("replayed", False)) for e in replayed + live] == [
        (first, True),
        (third, True),
        (late, False),
        (third + 1, False),
    ]


async def test_a_replay_over_the_limit_says_where_to_continue(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com", online=False)
    since = await last_event_id(stack)
    logged = await log_events(stack, REPLAY_LIMIT + 3)

    async with ali.http.ws_connect(events_url(stack, since)) as ws:
        replayed = [await receive(ws) for _ in range(REPLAY_LIMIT)]
        notice = await receive(ws)
    assert [e["id"] for e in replayed] == logged[:REPLAY_LIMIT]
    assert notice == {"type": "replay.truncated", "next_since": logged[REPLAY_LIMIT - 1]}

    async with ali.http.ws_connect(events_url(stack, notice["next_since"])) as ws:
        rest = [await receive(ws) for _ in range(3)]
        await ws.send_str("ping")
        assert (await ws.receive()).data == "pong"  # no truncation notice this time
    assert [e["id"] for e in rest] == logged[REPLAY_LIMIT:]
