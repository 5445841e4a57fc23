"""Keeping the teams table in step with config.yaml's teams."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from routing.config import TeamConfig
from storage.models import Agent, Team, TeamMember

logger = logging.getLogger(__name__)


def sync_teams(session: Session, teams: tuple[TeamConfig, ...]) -> dict[str, int]:
    """Create the configured teams and set their members; returns team ids by name.

    Teams that are no longer configured are kept (old conversations point at them)."""
    existing = {team.name: team for team in (session.scalars(select(Team))).all()}
    agents = {agent.email: agent.id for agent in (session.scalars(select(Agent))).all()}
    for config in teams:
        team = existing.get(config.name)
        if team is None:
            team = existing[config.name] = Team(name=config.name)
            session.add(team)
            session.flush()
        session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
        for email in dict.fromkeys(config.members + config.leads):
            agent_id = agents.get(email.lower())
            if agent_id is None:
                logger.warning(
                    "team %s: no agent %s (add it with `pishkhan agent add`)", config.name, email
                )
                continue
            session.add(TeamMember(team_id=team.id, agent_id=agent_id, lead=email in config.leads))
    session.flush()
    return {name: team.id for name, team in existing.items()}
