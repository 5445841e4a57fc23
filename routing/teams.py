"""Keeping the teams table in step with config.yaml's teams."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from routing.config import TeamConfig
from storage.models import Agent, Team, TeamMember

logger = logging.getLogger(__name__)


def sync_teams(session: Session, teams: tuple[TeamConfig, ...]) -> dict[str, int]:
    """Create the configured teams and set their members; returns team ids by name.

    Teams that are no longer configured are kept (old conversations point at them). Several
    processes may run this at once as they start: every write is an insert that yields to a
    concurrent one (ON CONFLICT) or a delete of what the config no longer names, so none of them
    fails on a unique constraint. Teams and members are written in sorted order, so concurrent
    runs take their row locks in the same order and cannot deadlock."""
    insert: Any = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    by_name = {config.name: config for config in teams}
    if by_name:
        session.execute(
            insert(Team)
            .values([{"name": name} for name in sorted(by_name)])
            .on_conflict_do_nothing(index_elements=["name"])
        )
    ids = {name: team_id for name, team_id in session.execute(select(Team.name, Team.id))}
    agents = {email: agent_id for email, agent_id in session.execute(select(Agent.email, Agent.id))}
    for name in sorted(by_name):
        config, team_id = by_name[name], ids[name]
        leads = {email.lower() for email in config.leads}
        members: dict[int, bool] = {}
        for email in dict.fromkeys(config.members + config.leads):
            agent_id = agents.get(email.lower())
            if agent_id is None:
                logger.warning(
                    "team %s: no agent %s (add it with `pishkhan agent add`)", name, email
                )
                continue
            members[agent_id] = members.get(agent_id, False) or email.lower() in leads
        session.execute(
            delete(TeamMember).where(
                TeamMember.team_id == team_id, TeamMember.agent_id.not_in(members)
            )
        )
        if members:
            statement = insert(TeamMember).values(
                [
                    {"team_id": team_id, "agent_id": agent_id, "lead": lead}
                    for agent_id, lead in sorted(members.items())
                ]
            )
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["team_id", "agent_id"],
                    set_={"lead": statement.excluded.lead},
                )
            )
    return ids
