"""Syncing config.yaml's teams into the database: idempotent, and safe when several processes
start at once (each runs it in its own transaction)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from routing.config import TeamConfig
from routing.teams import sync_teams
from storage.db import SessionFactory
from storage.models import Agent, Team, TeamMember
from storage.work import UnitOfWork

TEAMS = (
    TeamConfig(name="فروش", members=("sara@example.com", "ali@example.com")),
    TeamConfig(name="پشتیبانی", members=("ali@example.com",), leads=("reza@example.com",)),
    TeamConfig(name="billing", members=("nobody@example.com",)),
)


async def add_agents(sessions: SessionFactory, *emails: str) -> dict[str, int]:
    async with sessions.begin() as session:
        agents = [Agent(email=email, name=email, password_hash="-") for email in emails]
        session.add_all(agents)
    return {agent.email: agent.id for agent in agents}


async def memberships(sessions: SessionFactory) -> set[tuple[str, int, bool]]:
    async with sessions() as session:
        rows = await session.execute(
            select(Team.name, TeamMember.agent_id, TeamMember.lead).join(
                TeamMember, TeamMember.team_id == Team.id
            )
        )
        return {(name, agent_id, lead) for name, agent_id, lead in rows}


async def test_syncing_twice_keeps_one_team_each_and_follows_member_changes(
    sessions: SessionFactory,
) -> None:
    ids = await add_agents(sessions, "sara@example.com", "ali@example.com", "reza@example.com")
    work = UnitOfWork.for_sessions(sessions)
    try:
        first = await work.run(sync_teams, TEAMS)
        again = await work.run(sync_teams, TEAMS)
        assert first == again and set(first) == {"فروش", "پشتیبانی", "billing"}

        changed = (
            TeamConfig(name="فروش", members=("ali@example.com",), leads=("ali@example.com",)),
        )
        after = await work.run(sync_teams, changed)
    finally:
        await work.close()

    assert after == first  # teams no longer configured are kept: old conversations point at them
    assert await memberships(sessions) == {
        ("فروش", ids["ali@example.com"], True),
        ("پشتیبانی", ids["ali@example.com"], False),
        ("پشتیبانی", ids["reza@example.com"], True),
    }


async def test_processes_starting_at_once_all_sync_the_same_teams(
    sessions: SessionFactory,
) -> None:
    """Each `UnitOfWork` here is a process starting: its own transaction on its own connection.
    Before the fix, two of them on PostgreSQL both inserted the same team and one crashed on the
    unique name (or on a team member's primary key)."""
    ids = await add_agents(sessions, "sara@example.com", "ali@example.com", "reza@example.com")
    works = [UnitOfWork.for_sessions(sessions) for _ in range(4)]
    try:
        for _ in range(5):  # fresh teams each round, so every round races on the inserts
            async with sessions.begin() as session:
                for team in (await session.scalars(select(Team))).all():
                    await session.delete(team)
            results = await asyncio.gather(*(work.run(sync_teams, TEAMS) for work in works))
            assert all(result == results[0] for result in results)
            assert set(results[0]) == {"فروش", "پشتیبانی", "billing"}
    finally:
        for work in works:
            await work.close()

    async with sessions() as session:
        assert len((await session.scalars(select(Team))).all()) == 3
    assert await memberships(sessions) == {
        ("فروش", ids["sara@example.com"], False),
        ("فروش", ids["ali@example.com"], False),
        ("پشتیبانی", ids["ali@example.com"], False),
        ("پشتیبانی", ids["reza@example.com"], True),
    }
