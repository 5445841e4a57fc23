"""The admin routes: teams (with config.yaml's teams beside the web app's edits), agents' teams
reaching the router and open event streams, the routing rules in effect, channel status, and
`/me` — each role-checked, bad input a clear 4xx with nothing stored."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from storage.config import StorageConfig
from tests.fixtures.stack import Agent, Stack, eventually, running_stack

CONFIG: dict[str, Any] = {
    "routing": {
        "teams": [
            {"name": "support", "members": ["ali@example.com"], "leads": ["ali@example.com"]},
            {"name": "sales"},
        ],
        "rules": [{"team": "sales", "keywords": ["قیمت", "خرید"], "language": "fa"}],
        "default_team": "support",
    },
    "channels": [
        {"type": "webform", "name": "contact", "team": "support"},
        {"type": "webform", "name": "old-form", "enabled": False},
    ],
}


async def teams_by_name(agent: Agent) -> dict[str, dict[str, Any]]:
    status, body = await agent.get("/api/v1/teams")
    assert status == 200, body
    return {team["name"]: team for team in body["teams"]}


async def test_admins_create_rename_staff_and_delete_teams(stack: Stack) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    ali = await stack.add_agent("ali@example.com", online=False)

    status, team = await boss.send(
        "POST",
        "/api/v1/teams",
        {"name": " پشتیبانی ", "members": [{"agent_id": ali.id, "lead": True}]},
    )
    assert status == 201, team
    assert team == {
        "id": team["id"],
        "name": "پشتیبانی",
        "members": [{"agent_id": ali.id, "lead": True}],
        "configured": False,
    }
    status, body = await ali.get("/api/v1/me")
    assert body["team_ids"] == [team["id"]]
    status, body = await boss.send("POST", "/api/v1/teams", {"name": "پشتیبانی"})
    assert status == 409 and "exists" in body["error"]

    path = f"/api/v1/teams/{team['id']}"
    status, changed = await boss.send(
        "PATCH", path, {"name": "فروش", "members": [{"agent_id": boss.id}]}
    )
    assert status == 200
    assert (changed["name"], changed["members"]) == ("فروش", [{"agent_id": boss.id, "lead": False}])
    status, agents = await boss.get("/api/v1/agents")
    by_id = {a["id"]: a for a in agents["agents"]}
    assert by_id[ali.id]["team_ids"] == [] and by_id[boss.id]["team_ids"] == [team["id"]]
    assert "load" in by_id[ali.id]

    status, body = await boss.send("DELETE", path)
    assert (status, body) == (200, {"deleted": team["id"]})
    assert await teams_by_name(boss) == {}
    assert (await boss.send("DELETE", path))[0] == 404
    assert (await boss.send("PATCH", path, {"name": "x"}))[0] == 404


async def test_team_routes_check_role_csrf_and_input(stack: Stack) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    ali = await stack.add_agent("ali@example.com", online=False)
    status, team = await boss.send("POST", "/api/v1/teams", {"name": "support"})
    assert status == 201
    path = f"/api/v1/teams/{team['id']}"

    for method, url, body in (
        ("POST", "/api/v1/teams", {"name": "x"}),
        ("PATCH", path, {"name": "x"}),
        ("DELETE", path, None),
        ("GET", "/api/v1/routing/rules", None),
        ("GET", "/api/v1/channels", None),
        ("PATCH", f"/api/v1/agents/{ali.id}", {"team_ids": [team["id"]]}),
    ):
        status, answer = await ali.send(method, url, body)
        assert status == 403, (method, url, answer)
    # A cookie session without the CSRF header cannot write.
    async with boss.http.post(boss.base + "/api/v1/teams", json={"name": "x"}) as response:
        assert response.status == 403

    bad = [
        ("POST", "/api/v1/teams", {}, 422, "name: Field required"),
        ("POST", "/api/v1/teams", {"name": "   "}, 422, "name: Value error, a team needs a name"),
        ("POST", "/api/v1/teams", {"name": "x" * 101}, 422, "name: String should have at most"),
        ("POST", "/api/v1/teams", {"name": "x", "extra": 1}, 422, "extra: Extra inputs"),
        ("POST", "/api/v1/teams", {"name": "x", "members": [{"agent_id": 999}]}, 404, "not found"),
        ("POST", "/api/v1/teams", {"name": "x", "members": [{"lead": True}]}, 422, "members.0"),
        ("PATCH", path, {"members": "all"}, 422, "members: Input should be a valid list"),
        ("PATCH", "/api/v1/teams/abc", {"name": "x"}, 404, ""),
        ("PATCH", f"/api/v1/agents/{ali.id}", {"team_ids": [999]}, 404, "not found: team 999"),
        ("PATCH", f"/api/v1/agents/{ali.id}", {"team_ids": ["a"]}, 422, "team_ids.0"),
        ("PATCH", f"/api/v1/agents/{ali.id}", {"name": ""}, 422, "name: String should have"),
        (
            "POST",
            "/api/v1/agents",
            {"email": "new@example.com", "password": "long enough pw", "team_ids": [999]},
            404,
            "not found: team 999",
        ),
    ]
    for method, url, body, expected, reason in bad:
        status, answer = await boss.send(method, url, body)
        assert status == expected, (method, url, body, answer)
        assert reason in answer.get("error", "") if isinstance(answer, dict) else True, answer
    async with boss.http.post(
        boss.base + "/api/v1/teams",
        data=b"{not json",
        headers={"X-CSRF-Token": boss.csrf, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 400

    # nothing of the refused writes was stored
    assert list(await teams_by_name(boss)) == ["support"]
    _, agents = await boss.get("/api/v1/agents")
    assert [a["email"] for a in agents["agents"]] == ["boss@example.com", "ali@example.com"]
    assert all(a["team_ids"] == [] for a in agents["agents"])


async def test_a_new_agents_teams_and_a_team_change_reach_the_router_and_open_streams(
    stack: Stack,
) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    _, sales = await boss.send("POST", "/api/v1/teams", {"name": "sales"})
    status, sara = await boss.send(
        "POST",
        "/api/v1/agents",
        {
            "email": "sara@example.com",
            "name": "سارا",
            "password": "long enough pw",
            "team_ids": [sales["id"], sales["id"]],
        },
    )
    assert status == 201 and sara["team_ids"] == [sales["id"]]
    ali = await stack.add_agent("ali@example.com", online=False)

    # A conversation in the sales queue: nobody online.
    await stack.post_form("contact", {"email": "reza@example.com", "message": "سلام"})

    async def first() -> dict[str, Any] | None:
        _, body = await boss.get("/api/v1/conversations")
        return body["conversations"][0] if body["conversations"] else None

    conversation = await first() or await eventually(first)
    status, _ = await boss.send(
        "PUT",
        f"/api/v1/conversations/{conversation['id']}/assignment",
        {"agent_id": None, "team_id": sales["id"], "set_team": True},
    )
    assert status == 200
    _, listing = await ali.get("/api/v1/conversations")
    assert listing["conversations"] == []  # not in sales

    url = stack.base.replace("http", "ws") + "/api/v1/events"
    async with ali.http.ws_connect(url) as ws:
        status, _ = await ali.send("PUT", "/api/v1/me/presence", {"presence": "online"})
        assert status == 200
        # Ali joins sales: the router gives him the waiting conversation at once, and his open
        # stream shows it without waiting for its next credential check.
        status, changed = await boss.send(
            "PATCH", f"/api/v1/agents/{ali.id}", {"team_ids": [sales["id"]], "name": "علی"}
        )
        assert status == 200 and changed["team_ids"] == [sales["id"]] and changed["name"] == "علی"
        while True:
            message = await asyncio.wait_for(ws.receive(), 5)
            assert message.type == aiohttp.WSMsgType.TEXT
            event = json.loads(message.data)
            if event["type"] == "conversation.assigned":
                break
        assert (event["conversation_id"], event["data"]["to"]) == (conversation["id"], ali.id)
    _, listing = await ali.get("/api/v1/conversations?view=mine")
    assert [c["id"] for c in listing["conversations"]] == [conversation["id"]]
    # A team with conversations cannot be deleted (they would become visible to everyone).
    status, body = await boss.send("DELETE", f"/api/v1/teams/{sales['id']}")
    assert status == 409 and "conversation" in body["error"]


async def test_config_teams_keep_their_name_and_web_edits_last_until_the_config_changes(
    storage_config: StorageConfig,
) -> None:
    async with running_stack(storage_config, CONFIG) as stack:
        boss = await stack.add_agent("boss@example.com", role="admin", online=False)
        ali = await stack.add_agent("ali@example.com", online=False)
        sara = await stack.add_agent("sara@example.com", online=False)
    # Restarted: ali now exists, so the config's membership applies.
    async with running_stack(storage_config, CONFIG) as stack:
        boss = await stack.login("boss@example.com")
        teams = await teams_by_name(boss)
        support = teams["support"]
        assert support["configured"] and support["members"] == [{"agent_id": ali.id, "lead": True}]
        path = f"/api/v1/teams/{support['id']}"
        status, body = await boss.send("PATCH", path, {"name": "help"})
        assert status == 409 and "config.yaml" in body["error"]
        assert (await boss.send("DELETE", path))[0] == 409
        status, _ = await boss.send(
            "PATCH", path, {"name": "support", "members": [{"agent_id": sara.id}]}
        )
        assert status == 200

    async with running_stack(storage_config, CONFIG) as stack:  # the same config: edits stay
        boss = await stack.login("boss@example.com")
        members = (await teams_by_name(boss))["support"]["members"]
        assert members == [{"agent_id": sara.id, "lead": False}]

    changed = json.loads(json.dumps(CONFIG))
    changed["routing"]["teams"][0]["members"] = ["ali@example.com", "boss@example.com"]
    async with running_stack(storage_config, changed) as stack:  # the config changed: it wins
        boss = await stack.login("boss@example.com")
        members = (await teams_by_name(boss))["support"]["members"]
        expected = [{"agent_id": ali.id, "lead": True}, {"agent_id": boss.id, "lead": False}]
        assert members == sorted(expected, key=lambda m: m["agent_id"])


async def test_routing_rules_channels_and_me(storage_config: StorageConfig) -> None:
    async with running_stack(storage_config, CONFIG) as stack:
        boss = await stack.add_agent("boss@example.com", role="admin", online=False)
        status, me = await boss.get("/api/v1/me")
        assert status == 200
        assert (me["locale"], me["presence"], me["role"]) == ("fa", "offline", "admin")
        status, _ = await boss.send("PUT", "/api/v1/me/preferences", {"locale": "en"})
        assert status == 200
        assert (await boss.get("/api/v1/me"))[1]["locale"] == "en"

        status, rules = await boss.get("/api/v1/routing/rules")
        assert status == 200
        assert rules["rules"] == [
            {
                "team": "sales",
                "channels": [],
                "language": "fa",
                "keywords": ["قیمت", "خرید"],
                "customer_labels": [],
                "configured": True,
            }
        ]
        assert rules["default_team"] == "support"
        assert rules["channel_teams"] == {"contact": "support"}

        status, body = await boss.get("/api/v1/channels")
        assert status == 200
        channels = {c["name"]: c for c in body["channels"]}
        assert channels["old-form"] == {
            "name": "old-form",
            "type": "webform",
            "enabled": False,
            "team": None,
            "status": "disabled",
            "last_message_at": None,
            "last_error": None,
        }
        assert channels["contact"]["status"] == "running"
        assert channels["contact"]["last_message_at"] is None
        await stack.post_form("contact", {"email": "reza@example.com", "message": "سلام"})

        async def arrived() -> str | None:
            _, body = await boss.get("/api/v1/channels")
            return next(c for c in body["channels"] if c["name"] == "contact")["last_message_at"]

        assert await eventually(arrived)


async def test_openapi_lists_the_admin_routes(stack: Stack) -> None:
    async with stack.http.get(stack.base + "/api/v1/openapi.json") as response:
        spec = await response.json()
    paths = spec["paths"]
    assert paths["/api/v1/teams"]["post"]["x-role"] == "admin"
    assert set(paths["/api/v1/teams/{id}"]) == {"patch", "delete"}
    assert paths["/api/v1/routing/rules"]["get"]["x-role"] == "admin"
    assert "team_ids" in spec["components"]["schemas"]["AgentPatchBody"]["properties"]
    assert "team_ids" in spec["components"]["schemas"]["NewAgentBody"]["properties"]
