"""The customer's 360° view through the API: reading, editing and merging two records of the
same person, with visibility, CSRF and bad input."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.config import StorageConfig
from storage.models import Customer, Event
from tests.fixtures.stack import Agent, Stack, eventually, running_stack

ORDER_LATE = "سفارشم هنوز نرسیده است"
AFTER_SALES = "خدمات پس از فروش شما عالی است ولی پاسخگویی کند است"


async def customers_by_email(agent: Agent, count: int) -> dict[str, dict[str, Any]]:
    """Each conversation's customer profile, keyed by the customer's first email."""

    async def probe() -> dict[str, dict[str, Any]] | None:
        _, listing = await agent.get("/api/v1/conversations")
        if len(listing["conversations"]) < count:
            return None
        profiles = {}
        for item in listing["conversations"]:
            _, profile = await agent.get(f"/api/v1/customers/{item['customer']['id']}")
            profiles[profile["contact_points"][0]["value"]] = profile
        return profiles

    return await eventually(probe)


async def test_profile_edit_and_clear_owner(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    sara = await stack.add_agent("sara@example.com", online=False)
    await stack.post_form(
        "contact",
        {
            "name": "مریم",
            "email": "maryam@example.com",
            "phone": "۰۹۱۲۱۲۳۴۵۶۷",
            "message": ORDER_LATE,
        },
    )
    profile = (await customers_by_email(ali, 1))["maryam@example.com"]
    assert profile["name"] == "مریم"
    assert {"kind": "phone", "value": "+989121234567"} in profile["contact_points"]
    assert profile["identities"][0]["channel"] == "contact"
    assert profile["channels"] == ["contact"] and profile["owner"] is None
    path = f"/api/v1/customers/{profile['id']}"

    status, changed = await ali.send(
        "PATCH",
        path,
        {
            "name": "مریم احمدی",
            "attributes": {"شهر": "تهران", "vip": True, "orders": 3},
            "labels": {"add": ["وفادار", "vip"]},
            "owner_id": sara.id,
        },
    )
    assert status == 200, changed
    assert changed["name"] == "مریم احمدی"
    assert changed["attributes"] == {"شهر": "تهران", "vip": True, "orders": 3}
    assert changed["labels"] == ["vip", "وفادار"]
    assert changed["owner"] == {"id": sara.id, "name": "sara"}

    status, changed = await ali.send(
        "PATCH", path, {"attributes": {"شهر": "شیراز"}, "labels": {"remove": ["vip"]}}
    )
    assert changed["attributes"] == {"شهر": "شیراز"}  # replaced, not merged
    assert changed["labels"] == ["وفادار"] and changed["owner"]["id"] == sara.id
    status, changed = await ali.send("PATCH", path, {"owner_id": None})
    assert status == 200 and changed["owner"] is None

    async with stack.sessions() as session:
        logged = (
            await session.scalars(
                select(Event.type).where(Event.customer_id == profile["id"]).order_by(Event.id)
            )
        ).all()
    assert logged.count("customer.updated") == 3


async def test_bad_edits_are_refused_and_change_nothing(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    await stack.post_form(
        "contact", {"name": "رضا", "email": "reza@example.com", "message": "سلام"}
    )
    profile = (await customers_by_email(ali, 1))["reza@example.com"]
    path = f"/api/v1/customers/{profile['id']}"
    for body, expected in (
        ({"name": "x", "owner_id": 999_999}, 404),  # unknown agent: the name is not changed either
        ({"name": "   "}, 422),
        ({"name": "x" * 201}, 422),
        ({"attributes": {"k": {"nested": 1}}}, 422),
        ({"attributes": {f"k{n}": n for n in range(101)}}, 422),
        ({"attributes": {"k": "\x00"}}, 422),
        ({"labels": {"add": [" "]}}, 422),
        ({"email": "x@example.com"}, 422),
        ({"owner_id": "ali"}, 422),
    ):
        status, answer = await ali.send("PATCH", path, body)
        assert status == expected, (body, answer)
    async with ali.http.patch(ali.base + path, json={"name": "بدون توکن"}) as response:
        assert response.status == 403
    async with ali.http.patch(
        ali.base + path,
        data="{not json",
        headers={"X-CSRF-Token": ali.csrf, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
    _, after = await ali.get(path)
    assert after == profile
    for missing in ("/api/v1/customers/999999", "/api/v1/customers/abc"):
        status, _ = await ali.get(missing)
        assert status == 404
    status, _ = await ali.send("PATCH", "/api/v1/customers/999999", {"name": "x"})
    assert status == 404


async def test_merging_moves_everything_to_one_customer(stack: Stack) -> None:
    ali = await stack.add_agent("ali@example.com")
    await stack.post_form(
        "contact", {"name": "مریم", "email": "maryam@example.com", "message": ORDER_LATE}
    )
    await stack.post_form("contact", {"name": "", "phone": "09121234567", "message": AFTER_SALES})
    profiles = await customers_by_email(ali, 2)
    keep, other = profiles["maryam@example.com"], profiles["+989121234567"]
    await ali.send(
        "PATCH",
        f"/api/v1/customers/{other['id']}",
        {"labels": {"add": ["vip"]}, "attributes": {"شهر": "تبریز"}},
    )
    path = f"/api/v1/customers/{keep['id']}/merge"

    status, _ = await ali.send("POST", path, {"other_id": keep["id"]})
    assert status == 422
    status, _ = await ali.send("POST", path, {"other_id": 999_999})
    assert status == 404
    status, _ = await ali.send("POST", path, {})
    assert status == 422
    async with ali.http.post(ali.base + path, json={"other_id": other["id"]}) as response:
        assert response.status == 403  # no CSRF token

    status, merged = await ali.send("POST", path, {"other_id": other["id"]})
    assert status == 200, merged
    assert merged["id"] == keep["id"] and merged["name"] == "مریم"
    assert sorted(p["value"] for p in merged["contact_points"]) == [
        "+989121234567",
        "maryam@example.com",
    ]
    assert len(merged["identities"]) == 2 and merged["labels"] == ["vip"]
    assert merged["attributes"] == {"شهر": "تبریز"}
    assert sorted(c["id"] for c in merged["conversations"]) == sorted(
        [keep["conversations"][0]["id"], other["conversations"][0]["id"]]
    )
    status, _ = await ali.get(f"/api/v1/customers/{other['id']}")
    assert status == 404
    async with stack.sessions() as session:
        assert await session.get(Customer, other["id"]) is None
        types = (
            await session.scalars(select(Event.type).where(Event.customer_id == keep["id"]))
        ).all()
    assert "customer.merged" in types and "conversation.created" in types  # history moved too
    _, listing = await ali.get("/api/v1/conversations")
    assert {c["customer"]["id"] for c in listing["conversations"]} == {keep["id"]}

    # the customer writes again from the phone: it lands on the merged customer
    await stack.post_form("contact", {"phone": "0912 123 4567", "message": "پیگیری"})

    async def landed() -> bool:
        _, profile = await ali.get(f"/api/v1/customers/{keep['id']}")
        return (
            any(c["status"] == "open" for c in profile["conversations"])
            and len(profile["identities"]) == 2
        )

    assert await eventually(landed)


async def test_agents_cannot_see_or_merge_other_teams_customers(
    storage_config: StorageConfig,
) -> None:
    extra = {
        "routing": {"teams": [{"name": "support"}]},
        "channels": [{"type": "webform", "name": "contact", "team": "support"}],
    }
    async with running_stack(storage_config, extra) as stack:
        boss = await stack.add_agent("boss@example.com", role="admin", online=False)
        outsider = await stack.add_agent("out@example.com", online=False)
        await stack.post_form("contact", {"email": "a@example.com", "message": ORDER_LATE})
        await stack.post_form("contact", {"email": "b@example.com", "message": AFTER_SALES})
        profiles = await customers_by_email(boss, 2)
        a, b = profiles["a@example.com"], profiles["b@example.com"]
        status, _ = await outsider.get(f"/api/v1/customers/{a['id']}")
        assert status == 404
        status, _ = await outsider.send("PATCH", f"/api/v1/customers/{a['id']}", {"name": "x"})
        assert status == 404
        status, _ = await outsider.send(
            "POST", f"/api/v1/customers/{a['id']}/merge", {"other_id": b["id"]}
        )
        assert status == 404
        _, still = await boss.get(f"/api/v1/customers/{b['id']}")
        assert still["id"] == b["id"]  # nothing was merged
