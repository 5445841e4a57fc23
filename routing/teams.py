"""Keeping the teams table in step with config.yaml's teams."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from routing.config import TeamConfig
from storage.models import Agent, Team, TeamMember

logger = logging.getLogger(__name__)


async def sync_teams(session: AsyncSession, teams: tuple[TeamConfig, ...]) -> dict[str, int]:
    """Create the configured teams and set their members; returns team ids by name.

    Teams that are no longer configured are kept (old conversations point at them)."""
    existing = {team.name: team for team in (await session.scalars(select(Team))).all()}
    agents = {agent.email: agent.id for agent in (await session.scalars(select(Agent))).all()}
    for config in teams:
        team = existing.get(config.name)
        if team is None:
            team = existing[config.name] = Team(name=config.name)
            session.add(team)
            await session.flush()
        await session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
        for email in dict.fromkeys(config.members + config.leads):
            agent_id = agents.get(email.lower())
            if agent_id is None:
                logger.warning(
                    "team %s: no agent %s (add it with `pishkhan agent add`)", config.name, email
                )
                continue
            session.add(TeamMember(team_id=team.id, agent_id=agent_id, lead=email in config.leads))
    await session.flush()
    return {name: team.id for name, team in existing.items()}
