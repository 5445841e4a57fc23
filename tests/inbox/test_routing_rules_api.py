"""Routing rules admins edit in the web app: listed after config.yaml's read-only rules, tried
by the router after them in their order, changed only by admins, bad input a 4xx with nothing
stored, every change an event."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.config import StorageConfig
from storage.models import Event
from tests.fixtures.stack import Agent, Stack, eventually, running_stack

RULES = "/api/v1/routing/rules"


async def _conversation_of(boss: Agent, email: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        _, body = await boss.get("/api/v1/conversations?view=all")
        for conversation in body["conversations"]:
            if conversation["customer"]["name"] == email:
                return conversation  # type: ignore[no-any-return]
        return None

    return await eventually(find)


async def _team_of(stack: Stack, boss: Agent, email: str, message: str) -> int | None:
    fields = {"name": email, "email": email, "message": message}
    status, _ = await stack.post_form("contact", fields)
    assert status in (200, 201, 202)
    return (await _conversation_of(boss, email))["team_id"]  # type: ignore[no-any-return]


async def _db_rules(boss: Agent) -> list[dict[str, Any]]:
    status, body = await boss.get(RULES)
    assert status == 200, body
    return [rule for rule in body["rules"] if not rule["configured"]]


async def test_a_rule_made_in_the_web_app_routes_the_next_message(stack: Stack) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    _, sales = await boss.send("POST", "/api/v1/teams", {"name": "sales"})
    _, billing = await boss.send("POST", "/api/v1/teams", {"name": "billing"})

    assert await _team_of(stack, boss, "a@example.com", "قیمت این کالا چند است؟") is None

    status, rule = await boss.send(
        "POST",
        RULES,
        {"team_id": sales["id"], "keywords": [" قیمت ", "price", "قیمت"], "channels": ["contact"]},
    )
    assert status == 201, rule
    assert rule["team"] == "sales" and rule["keywords"] == ["قیمت", "price"]
    assert (rule["enabled"], rule["configured"], rule["created_by"]) == (True, False, boss.id)
    assert await _team_of(stack, boss, "b@example.com", "قيمت این کالا؟") == sales["id"]
    assert await _team_of(stack, boss, "c@example.com", "سلام") is None

    # A second, broader rule after it; then reorder so that it wins.
    status, other = await boss.send("POST", RULES, {"team_id": billing["id"], "language": "fa"})
    assert status == 201 and other["position"] > rule["position"]
    assert await _team_of(stack, boss, "d@example.com", "قیمت چند است") == sales["id"]
    status, body = await boss.send("PUT", RULES + "/order", {"ids": [other["id"], rule["id"]]})
    assert status == 200, body
    assert [r["id"] for r in body["rules"]] == [other["id"], rule["id"]]
    assert await _team_of(stack, boss, "e@example.com", "قیمت چند است") == billing["id"]

    # Disabled: skipped. Edited: its new conditions apply. Deleted: gone.
    status, changed = await boss.send("PATCH", f"{RULES}/{other['id']}", {"enabled": False})
    assert status == 200 and changed["enabled"] is False and changed["language"] == "fa"
    assert await _team_of(stack, boss, "f@example.com", "قیمت چند است") == sales["id"]
    status, changed = await boss.send(
        "PATCH",
        f"{RULES}/{other['id']}",
        {"enabled": True, "language": None, "keywords": ["refund"], "team_id": billing["id"]},
    )
    assert status == 200 and (changed["language"], changed["keywords"]) == (None, ["refund"])
    assert await _team_of(stack, boss, "g@example.com", "I want a refund") == billing["id"]
    assert await _team_of(stack, boss, "h@example.com", "قیمت چند است") == sales["id"]
    assert (await boss.send("DELETE", f"{RULES}/{rule['id']}"))[1] == {"deleted": rule["id"]}
    assert await _team_of(stack, boss, "i@example.com", "قیمت چند است") is None
    assert [r["id"] for r in await _db_rules(boss)] == [other["id"]]

    # A team a rule sends conversations to cannot be deleted from under it.
    _, empty = await boss.send("POST", "/api/v1/teams", {"name": "empty"})
    await boss.send("PATCH", f"{RULES}/{other['id']}", {"team_id": empty["id"]})
    status, body = await boss.send("DELETE", f"/api/v1/teams/{empty['id']}")
    assert status == 409 and "routing rule" in body["error"]

    async with stack.sessions() as session:
        types = list(
            await session.scalars(
                select(Event.type).where(Event.type.like("routing_rule.%")).order_by(Event.id)
            )
        )
    assert types == [
        "routing_rule.created",
        "routing_rule.created",
        "routing_rule.reordered",
        "routing_rule.updated",
        "routing_rule.updated",
        "routing_rule.deleted",
        "routing_rule.updated",
    ]


async def test_config_rules_come_first_and_are_marked(storage_config: StorageConfig) -> None:
    config = {
        "routing": {
            "teams": [{"name": "support"}, {"name": "sales"}],
            "rules": [{"team": "support", "keywords": ["help"]}],
        },
    }
    async with running_stack(storage_config, config) as stack:
        boss = await stack.add_agent("boss@example.com", role="admin", online=False)
        teams = {t["name"]: t["id"] for t in (await boss.get("/api/v1/teams"))[1]["teams"]}
        status, _ = await boss.send(
            "POST", RULES, {"team_id": teams["sales"], "keywords": ["help", "price"]}
        )
        assert status == 201
        _, body = await boss.get(RULES)
        assert [(r["team"], r["configured"]) for r in body["rules"]] == [
            ("support", True),
            ("sales", False),
        ]
        assert await _team_of(stack, boss, "a@example.com", "help me") == teams["support"]
        assert await _team_of(stack, boss, "b@example.com", "the price?") == teams["sales"]


async def test_rule_routes_check_role_csrf_and_input(stack: Stack) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    ali = await stack.add_agent("ali@example.com", online=False)
    _, team = await boss.send("POST", "/api/v1/teams", {"name": "sales"})
    status, rule = await boss.send("POST", RULES, {"team_id": team["id"]})
    assert status == 201
    path = f"{RULES}/{rule['id']}"

    for method, url, body in (
        ("GET", RULES, None),
        ("POST", RULES, {"team_id": team["id"]}),
        ("PATCH", path, {"enabled": False}),
        ("DELETE", path, None),
        ("PUT", RULES + "/order", {"ids": [rule["id"]]}),
    ):
        status, answer = await ali.send(method, url, body)
        assert status == 403, (method, url, answer)
    async with boss.http.post(boss.base + RULES, json={"team_id": team["id"]}) as response:
        assert response.status == 403  # a cookie session without the CSRF header

    bad = [
        ("POST", RULES, {}, 422, "team_id: Field required"),
        ("POST", RULES, {"team_id": 999}, 404, "not found: team 999"),
        ("POST", RULES, {"team_id": "x"}, 422, "team_id"),
        ("POST", RULES, {"team_id": team["id"], "language": "de"}, 422, "language"),
        ("POST", RULES, {"team_id": team["id"], "channels": ["nope"]}, 422, "no channel named"),
        ("POST", RULES, {"team_id": team["id"], "keywords": "price"}, 422, "keywords"),
        ("POST", RULES, {"team_id": team["id"], "keywords": [""]}, 422, "keywords.0"),
        ("POST", RULES, {"team_id": team["id"], "extra": 1}, 422, "extra: Extra inputs"),
        ("PATCH", path, {"team_id": 999}, 404, "not found: team 999"),
        ("PATCH", path, {"enabled": None}, 422, "enabled: may not be null"),
        ("PATCH", path, {"keywords": ["a" * 201]}, 422, "keywords.0"),
        ("PATCH", f"{RULES}/999", {"enabled": False}, 404, "not found"),
        ("PATCH", f"{RULES}/abc", {"enabled": False}, 404, ""),
        ("DELETE", f"{RULES}/999", None, 404, "not found"),
        ("PUT", RULES + "/order", {"ids": []}, 422, "missing"),
        ("PUT", RULES + "/order", {"ids": [rule["id"], rule["id"]]}, 422, "once"),
        ("PUT", RULES + "/order", {"ids": [rule["id"], 999]}, 404, "not found"),
        ("PUT", RULES + "/order", {}, 422, "ids: Field required"),
    ]
    for method, url, body, expected, reason in bad:
        status, answer = await boss.send(method, url, body)
        assert status == expected, (method, url, body, answer)
        if reason:
            assert reason in answer.get("error", ""), answer
    async with boss.http.post(
        boss.base + RULES,
        data=b"{not json",
        headers={"X-CSRF-Token": boss.csrf, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 400

    # nothing of the refused writes was stored
    [stored] = await _db_rules(boss)
    assert (stored["id"], stored["enabled"], stored["keywords"]) == (rule["id"], True, [])


async def test_openapi_lists_the_rule_routes(stack: Stack) -> None:
    async with stack.http.get(stack.base + "/api/v1/openapi.json") as response:
        spec = await response.json()
    paths = spec["paths"]
    assert set(paths["/api/v1/routing/rules"]) == {"get", "post"}
    assert set(paths["/api/v1/routing/rules/{id}"]) == {"patch", "delete"}
    assert paths["/api/v1/routing/rules/order"]["put"]["x-role"] == "admin"
    assert "keywords" in spec["components"]["schemas"]["RuleBody"]["properties"]
