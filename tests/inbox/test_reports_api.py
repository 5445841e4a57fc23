"""The reports API: who sees which figures (agents their own, leads their teams', admins all,
403 for anything else), the CSV export, and bad input answered with a clear 400."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date
from zoneinfo import ZoneInfo

import pytest_asyncio
from sqlalchemy import update

from inbox.accounts import hash_password
from routing.reports import Period, Scope
from storage.config import StorageConfig
from storage.models import Agent, Team, TeamMember
from tests.fixtures.stack import PASSWORD, Stack, running_stack
from tests.routing.test_reports import World, expected, same, seed_month

MONTH = "from=2026-10-01&to=2026-10-31"
PERIOD = Period(date(2026, 10, 1), date(2026, 10, 31), ZoneInfo("Asia/Tehran"))


@pytest_asyncio.fixture
async def seeded(storage_config: StorageConfig) -> AsyncIterator[tuple[Stack, World]]:
    """The web app over a generated month; agent 0 leads team 0, agent 1 is in team 0 too,
    agent 2 is in team 1. All three can log in."""
    async with running_stack(storage_config, roles=("web",)) as stack:
        world = await seed_month(stack.sessions)
        async with stack.sessions.begin() as session:
            await session.execute(
                update(Agent)
                .where(Agent.id.in_(world.agents))
                .values(password_hash=hash_password(PASSWORD))
            )
            session.add_all(
                [
                    TeamMember(team_id=world.teams[0], agent_id=world.agents[0], lead=True),
                    TeamMember(team_id=world.teams[0], agent_id=world.agents[1]),
                    TeamMember(team_id=world.teams[1], agent_id=world.agents[2]),
                ]
            )
        yield stack, world


async def test_each_role_sees_its_own_scope(seeded: tuple[Stack, World]) -> None:
    stack, world = seeded
    admin = await stack.add_agent("boss@example.com", role="admin", online=False)
    lead, member, agent = [await stack.login(f"a{i}@example.com") for i in range(3)]
    everything = Scope()
    team = Scope(team_ids=frozenset({world.teams[0]}))
    for who, query, scope in (
        (admin, "", everything),
        (admin, f"&team={world.teams[1]}", Scope(team_ids=frozenset({world.teams[1]}))),
        (lead, "", team),
        (
            lead,
            f"&agent={member.id}",
            Scope(agent_ids=frozenset({member.id}), team_ids=team.team_ids),
        ),
        (agent, "", Scope(agent_ids=frozenset({agent.id}))),
        (
            agent,
            "&channel=telegram",
            Scope(agent_ids=frozenset({agent.id}), channels=frozenset({"telegram"})),
        ),
    ):
        status, body = await who.get(f"/api/v1/reports/summary?{MONTH}{query}")
        assert status == 200, body
        _, totals = await expected(stack.sessions, PERIOD, scope, "bucket")
        same(body["totals"], totals, f"{who.email} {query}")
        assert body["timezone"] == "Asia/Tehran" and len(body["rows"]) == 31
    status, body = await agent.get(f"/api/v1/reports/agents?{MONTH}")
    assert status == 200
    assert [row["key"] for row in body["rows"]] in ([agent.id], [])
    status, body = await admin.get(f"/api/v1/reports/teams?{MONTH}")
    assert {row["label"] for row in body["rows"]} == {"فروش", "پشتیبانی", ""}


async def test_someone_elses_scope_is_refused_not_narrowed(seeded: tuple[Stack, World]) -> None:
    stack, world = seeded
    lead, member, agent = [await stack.login(f"a{i}@example.com") for i in range(3)]
    for who, query in (
        (agent, f"agent={member.id}"),
        (agent, f"team={world.teams[1]}"),  # a member, but not its lead
        (member, f"team={world.teams[0]}"),
        (lead, f"team={world.teams[1]}"),
        (lead, f"agent={agent.id}"),  # not in a team the lead leads
    ):
        status, body = await who.get(f"/api/v1/reports/summary?{MONTH}&{query}")
        assert status == 403, (who.email, query, body)
        assert "admins" in body["error"]
    async with stack.http.get(f"{stack.base}/api/v1/reports/summary") as response:
        assert response.status == 401


async def test_every_table_downloads_as_csv_that_excel_reads(seeded: tuple[Stack, World]) -> None:
    stack, world = seeded
    async with stack.sessions.begin() as session:
        await session.execute(
            update(Team).where(Team.id == world.teams[1]).values(name='=HYPERLINK("x")')
        )
    admin = await stack.add_agent("boss@example.com", role="admin", online=False)
    for path in ("summary", "channels", "teams", "agents", "hours", "csat"):
        for url in (
            f"/api/v1/reports/{path}.csv?{MONTH}",
            f"/api/v1/reports/{path}?{MONTH}&format=csv",
        ):
            async with admin.http.get(admin.base + url) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
                assert response.headers["Content-Disposition"] == (
                    f'attachment; filename="pishkhan-{path}-2026-10-01-2026-10-31.csv"'
                )
                raw = await response.read()
            assert raw.startswith(b"\xef\xbb\xbf")
            rows = list(csv.reader(io.StringIO(raw[3:].decode("utf-8"))))
            status, body = await admin.get(url.replace(".csv", "").replace("&format=csv", ""))
            assert status == 200
            assert rows[0] == body["columns"]
            assert len(rows) == len(body["rows"]) + 2 and rows[-1][0] == "total"
    async with admin.http.get(f"{admin.base}/api/v1/reports/teams.csv?{MONTH}") as response:
        text = (await response.read()).decode("utf-8-sig")
    assert "فروش" in text
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


BAD = [
    ("summary?from=2026-13-01", "from: no such date"),
    ("summary?from=1405/07/09", "from: a date like"),
    ("summary?to=۲۰۲۶-۱۰-۰۱", "to: a date like"),
    ("summary?from=2026-10-31&to=2026-10-01", "from: after to"),
    ("summary?from=2025-01-01&to=2026-10-01", "at most 400 days"),
    ("summary?from=0001-01-01&to=0001-01-02", "dates from 2000-01-01"),
    ("summary?from=9999-12-30&to=9999-12-31", "dates from 2000-01-01"),
    ("summary?group=month", "group: one of day, week"),
    ("summary?week_start=friday", "week_start: one of"),
    ("summary?format=xlsx", "format: one of json, csv"),
    ("summary?team=abc", "team: an id"),
    ("summary?agent=0", "agent: an id"),
    ("summary?channel=" + "x" * 101, "channel:"),
    ("revenue", "report: one of summary"),
    ("revenue.csv", "report: one of summary"),
]


async def test_bad_input_is_a_clear_400(seeded: tuple[Stack, World]) -> None:
    stack, _ = seeded
    admin = await stack.add_agent("boss@example.com", role="admin", online=False)
    for query, message in BAD:
        status, body = await admin.get(f"/api/v1/reports/{query}")
        assert status == 400, (query, body)
        assert message in body["error"], (query, body)


async def test_the_page_gets_every_report_in_one_request(seeded: tuple[Stack, World]) -> None:
    stack, world = seeded
    lead, _, agent = [await stack.login(f"a{i}@example.com") for i in range(3)]
    status, page = await lead.get(f"/api/v1/reports?{MONTH}")
    assert status == 200, page
    assert list(page["reports"]) == ["summary", "channels", "teams", "agents", "hours", "csat"]
    assert page["scope"]["teams"] == [world.teams[0]] and page["timezone"] == "Asia/Tehran"
    for name, table in page["reports"].items():  # the same tables as asked for one by one
        status, alone = await lead.get(f"/api/v1/reports/{name}?{MONTH}")
        assert status == 200
        assert table == {key: alone[key] for key in ("columns", "rows", "totals")}, name
    _, totals = await expected(
        stack.sessions, PERIOD, Scope(agent_ids=frozenset({agent.id})), "agent"
    )
    status, page = await agent.get(f"/api/v1/reports?{MONTH}")
    same(page["reports"]["agents"]["totals"], totals, "agent's own")
    status, body = await agent.get(f"/api/v1/reports?{MONTH}&team={world.teams[0]}")
    assert status == 403 and "admins" in body["error"]
    status, body = await agent.get("/api/v1/reports?from=2026-13-01")
    assert status == 400 and "from: no such date" in body["error"]
