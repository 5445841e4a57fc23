"""The automation API: admins make, change, reorder and delete rules that steer the next
message, every change audited; anyone else, and every bad request, gets a clear 4xx with
nothing stored. Agents set a conversation's priority."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from inbox import accounts
from storage.models import AutomationAudit, AutomationRule, Event
from tests.fixtures.stack import Agent, Stack, eventually

RULES = "/api/v1/automation/rules"
PRICE_RULE: dict[str, Any] = {
    "name": "پرسش قیمت",
    "trigger": "message.created",
    "conditions": [
        {"type": "channel", "values": ["contact"]},
        {"type": "text", "words": ["قیمت"]},
    ],
    "actions": [
        {"type": "add_labels", "labels": ["فروش"]},
        {"type": "set_priority", "priority": "high"},
    ],
}


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its real cost takes 0.2 s a hash; what these tests check does not depend on it."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", hasher)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", hasher.hash("not a password anyone has"))


async def _conversation_of(boss: Agent, email: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        _, body = await boss.get("/api/v1/conversations?view=all")
        for conversation in body["conversations"]:
            if conversation["customer"]["name"] == email:
                return conversation  # type: ignore[no-any-return]
        return None

    return await eventually(find)


async def _write(stack: Stack, boss: Agent, email: str, message: str) -> dict[str, Any]:
    fields = {"name": email, "email": email, "message": message}
    status, _ = await stack.post_form("contact", fields)
    assert status in (200, 201, 202)
    found = await _conversation_of(boss, email)
    _, body = await boss.get(f"/api/v1/conversations/{found['id']}")
    return body  # type: ignore[no-any-return]


def _labels(conversation: dict[str, Any]) -> list[str]:
    return sorted(conversation["labels"])


def _priority(conversation: dict[str, Any]) -> str:
    return str(conversation["priority"])


async def test_an_admin_rule_labels_the_next_message_and_every_change_is_audited(
    stack: Stack,
) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    assert (await boss.send("POST", "/api/v1/labels", {"name": "فروش"}))[0] == 201

    status, rule = await boss.send("POST", RULES, PRICE_RULE)
    assert status == 201, rule
    assert (rule["trigger"], rule["position"], rule["enabled"]) == ("message.created", 1, True)
    assert rule["conditions"][1] == {"type": "text", "words": ["قیمت"]}

    conversation = await _write(stack, boss, "a@example.com", "قيمت این گوشی چند است؟")
    assert _labels(conversation) == ["فروش"] and _priority(conversation) == "high"
    other = await _write(stack, boss, "b@example.com", "سلام، سفارشم نرسیده")
    assert _labels(other) == [] and _priority(other) == "normal"

    # Disabled: it steers nothing. A second rule runs after it until reordered first.
    status, changed = await boss.send("PATCH", f"{RULES}/{rule['id']}", {"enabled": False})
    assert status == 200 and changed["enabled"] is False and changed["name"] == "پرسش قیمت"
    assert _labels(await _write(stack, boss, "c@example.com", "قیمت؟")) == []
    status, second = await boss.send(
        "POST",
        RULES,
        {"name": "همه", "trigger": "message.created", "actions": [{"type": "resolve"}]},
    )
    assert status == 201 and second["position"] == 2
    status, body = await boss.send(
        "POST",
        RULES + "/order",
        {"trigger": "message.created", "ids": [second["id"], rule["id"]]},
    )
    assert status == 200, body
    assert [r["id"] for r in body["rules"]] == [second["id"], rule["id"]]
    status, listed = await boss.get(RULES)
    assert status == 200 and [r["position"] for r in listed["rules"]] == [1, 2]
    assert "sla.warning" in listed["triggers"] and listed["channels"] == ["contact"]
    status, fetched = await boss.get(f"{RULES}/{second['id']}")
    assert status == 200 and fetched["name"] == "همه"
    assert (await boss.send("DELETE", f"{RULES}/{second['id']}"))[1] == {"deleted": second["id"]}
    assert (await boss.get(f"{RULES}/{second['id']}"))[0] == 404

    status, body = await boss.get("/api/v1/automation/audit")
    assert status == 200
    assert [(a["change"], a["agent"]["email"]) for a in body["audit"]] == [
        ("deleted", "boss@example.com"),
        ("reordered", "boss@example.com"),
        ("created", "boss@example.com"),
        ("updated", "boss@example.com"),
        ("created", "boss@example.com"),
    ]
    updated = body["audit"][3]
    assert (updated["before"]["enabled"], updated["after"]["enabled"]) == (True, False)
    status, page = await boss.get(f"/api/v1/automation/audit?limit=2&before={updated['id']}")
    assert [a["change"] for a in page["audit"]] == ["created"]


async def test_agents_set_a_conversations_priority(stack: Stack) -> None:
    agent = await stack.add_agent("agent@example.com")
    conversation = await _write(stack, agent, "a@example.com", "فوری: حسابم مسدود شده")
    path = f"/api/v1/conversations/{conversation['id']}"
    status, body = await agent.send("PATCH", path, {"priority": "urgent"})
    assert status == 200 and body["priority"] == "urgent", body
    assert (await agent.send("PATCH", path, {"priority": "critical"}))[0] == 422
    assert (await agent.send("PATCH", path, {"priority": "low", "status": "x"}))[0] == 422
    assert (await agent.send("PATCH", "/api/v1/conversations/999999", {"priority": "low"}))[
        0
    ] == 404
    async with stack.sessions() as session:
        changes = list(
            await session.scalars(
                select(Event.data).where(Event.type == "conversation.priority_changed")
            )
        )
    assert [(c["from"], c["to"]) for c in changes] == [("normal", "urgent")]


GOOD = {"name": "ok", "trigger": "message.created", "actions": [{"type": "resolve"}]}


BAD: list[tuple[Any, str]] = [
    ({**GOOD, "colour": "red"}, "colour: Extra inputs are not permitted"),
    ({**GOOD, "trigger": "message.deleted"}, "trigger"),
    ({**GOOD, "name": ""}, "name"),
    ({**GOOD, "name": 5}, "name"),
    ({**GOOD, "actions": []}, "actions"),
    ({**GOOD, "actions": [{"type": "explode"}]}, "actions.0"),
    ({**GOOD, "actions": [{"type": "snooze", "minutes": "soon"}]}, "minutes"),
    ({**GOOD, "actions": [{"type": "assign_team", "team_id": 9}]}, "no team 9"),
    ({**GOOD, "actions": [{"type": "add_labels", "labels": ["ناموجود"]}]}, "no label"),
    (
        {**GOOD, "actions": [{"type": "notify", "to": "agent"}]},
        "agent_id: give it exactly when",
    ),
    (
        {**GOOD, "conditions": [{"type": "channel", "values": ["fax"]}]},
        "no channel named 'fax'",
    ),
    (
        {**GOOD, "conditions": [{"type": "status_to", "values": ["resolved"]}]},
        "status_to applies only to conversation.status_changed rules",
    ),
    ({**GOOD, "conditions": [{"type": "text", "words": ["x" * 101]}]}, "words"),
    ({**GOOD, "name": "بد\x00نام"}, "NUL"),
    ({**GOOD, "actions": [{"type": "resolve"}] * 21}, "actions"),
    ([GOOD], "body"),
]


async def test_bad_rules_are_refused_and_nothing_is_stored(stack: Stack) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    for body, error in BAD:
        status, answer = await boss.send("POST", RULES, body)
        assert (status, error in answer["error"]) == (422, True), (body, answer)
    async with stack.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AutomationRule)) == 0
        assert await session.scalar(select(func.count()).select_from(AutomationAudit)) == 0


async def test_only_admins_with_their_csrf_token_reach_the_rules(stack: Stack) -> None:
    boss = await stack.add_agent("boss@example.com", role="admin", online=False)
    agent = await stack.add_agent("agent@example.com", online=False)
    status, rule = await boss.send("POST", RULES, GOOD)
    assert status == 201
    one = f"{RULES}/{rule['id']}"
    for method, path, body in [
        ("GET", RULES, None),
        ("POST", RULES, GOOD),
        ("GET", one, None),
        ("PATCH", one, {"enabled": False}),
        ("DELETE", one, None),
        ("POST", RULES + "/order", {"trigger": "message.created", "ids": [rule["id"]]}),
        ("GET", "/api/v1/automation/audit", None),
    ]:
        assert (await agent.send(method, path, body))[0] == 403, (method, path)
        async with stack.http.request(method, stack.base + path, json=body) as response:
            assert response.status == 401
    # The admin without the CSRF header: refused.
    async with boss.http.patch(stack.base + one, json={"enabled": False}) as response:
        assert response.status == 403 and "CSRF" in (await response.json())["error"]
    # Malformed, oversized, wrong type, unknown id, nulls and half orders.
    async with boss.http.post(
        stack.base + RULES,
        data=b'{"name": ',
        headers={"X-CSRF-Token": boss.csrf, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
    async with boss.http.post(
        stack.base + RULES,
        data=io.BytesIO(b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'),
        headers={"X-CSRF-Token": boss.csrf, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 413
    async with boss.http.post(
        stack.base + RULES,
        data=aiohttp.FormData({"name": "x"}),
        headers={"X-CSRF-Token": boss.csrf},
    ) as response:
        assert response.status == 415
    assert (await boss.send("PATCH", f"{RULES}/999999", {"enabled": False}))[0] == 404
    assert (await boss.send("PATCH", f"{RULES}/abc", {"enabled": False}))[0] == 404
    assert (await boss.send("PATCH", one, {"name": None}))[0] == 422
    assert (await boss.send("PATCH", one, {"enabled": "yes please"}))[0] == 422
    status, body = await boss.send("POST", RULES + "/order", {"trigger": "sla.warning", "ids": [1]})
    assert status == 422 and "no sla.warning rule" in body["error"]
    status, body = await boss.send(
        "POST", RULES + "/order", {"trigger": "message.created", "ids": [rule["id"]] * 2}
    )
    assert status == 422 and "once" in body["error"]
    assert (await boss.get("/api/v1/automation/audit?limit=0"))[0] == 400
    assert (await boss.get("/api/v1/automation/audit?before=x"))[0] == 400
    async with stack.sessions() as session:
        enabled = await session.scalar(select(AutomationRule.enabled))
        audited = await session.scalar(select(func.count()).select_from(AutomationAudit))
    assert (enabled, audited) == (True, 1)  # only the creation happened
