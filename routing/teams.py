"""Keeping the teams table in step with config.yaml's teams.

config.yaml and the admin pages share the teams. A team config.yaml names is created at start
when missing; its members are set from the config when the team was just created, or when the
membership the config gives differs from the one last applied (recorded as a `team.synced`
event). Otherwise the members stay as admins left them in the web app: their edits last until
the config's members of that team change. Teams made in the web app are never touched here; a
configured team's name (which rules, channels and `default_team` refer to) is changed in the
config, not in the web app."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from routing.config import TeamConfig
from storage.models import Agent, Event, Team, TeamMember, utcnow

logger = logging.getLogger(__name__)


def sync_teams(session: Session, teams: tuple[TeamConfig, ...]) -> dict[str, int]:
    """Create the configured teams and set their members (see the module's docstring for when);
    returns team ids by name.

    Teams that are no longer configured are kept (old conversations point at them). Several
    processes may run this at once as they start: every write is an insert that yields to a
    concurrent one (ON CONFLICT) or a delete of what the config no longer names, so none of them
    fails on a unique constraint. Teams and members are written in sorted order, so concurrent
    runs take their row locks in the same order and cannot deadlock."""
    dialect_insert: Any = (
        sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    )
    by_name = {config.name: config for config in teams}
    created: set[int] = set()
    if by_name:
        created = set(
            session.scalars(
                dialect_insert(Team)
                .values([{"name": name} for name in sorted(by_name)])
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(Team.id)
            )
        )
    ids = {name: team_id for name, team_id in session.execute(select(Team.name, Team.id))}
    agents = {email: agent_id for email, agent_id in session.execute(select(Agent.email, Agent.id))}
    applied = _last_applied(session)
    synced: list[dict[str, Any]] = []
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
        wanted = [[agent_id, lead] for agent_id, lead in sorted(members.items())]
        if team_id not in created and applied.get(team_id) == wanted:
            continue  # the config did not change: what admins did in the web app stands
        synced.append(
            {
                "type": "team.synced",
                "data": {"team_id": team_id, "name": name, "members": wanted},
                "created_at": utcnow(),
            }
        )
        session.execute(
            delete(TeamMember).where(
                TeamMember.team_id == team_id, TeamMember.agent_id.not_in(members)
            )
        )
        if members:
            statement = dialect_insert(TeamMember).values(
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
    if synced:
        session.execute(insert(Event), synced)
    return ids


def _last_applied(session: Session) -> dict[int, list[list[Any]]]:
    """The members last set from the config, by team id: `[[agent_id, lead], ...]`."""
    applied: dict[int, list[list[Any]]] = {}
    for data in session.scalars(
        select(Event.data).where(Event.type == "team.synced").order_by(Event.id)
    ):
        if isinstance(data, dict) and isinstance(data.get("team_id"), int):
            applied[data["team_id"]] = data.get("members", [])
    return applied
