"""Who may see which figures (docs/reports.md, "Who sees what"), and the WHERE clauses a scope
adds to a query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Conversation, TeamMember


class Forbidden(Exception):
    """The caller asked for figures outside what they may see."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Which rows the figures cover: each given set narrows (all of them together)."""

    agent_ids: frozenset[int] | None = None
    team_ids: frozenset[int] | None = None
    channels: frozenset[str] | None = None


async def scope_for(
    session: AsyncSession,
    *,
    agent_id: int,
    is_admin: bool,
    team: int | None = None,
    agent: int | None = None,
    channel: str | None = None,
) -> Scope:
    """The scope a caller asked for, if they may see it: an admin everything, a team lead their
    teams (and each member there), an agent their own conversations. Raises `Forbidden` rather
    than narrowing a request for someone else's figures."""
    channels = frozenset({channel}) if channel else None
    if is_admin:
        return Scope(
            agent_ids=frozenset({agent}) if agent is not None else None,
            team_ids=frozenset({team}) if team is not None else None,
            channels=channels,
        )
    led = frozenset(
        (
            await session.scalars(
                select(TeamMember.team_id).where(
                    TeamMember.agent_id == agent_id, TeamMember.lead.is_(True)
                )
            )
        ).all()
    )
    if team is not None and team not in led:
        raise Forbidden("team: only its leads and admins see a team's reports")
    if agent is not None and agent != agent_id:
        members = (
            await session.scalars(
                select(TeamMember.team_id).where(
                    TeamMember.agent_id == agent, TeamMember.team_id.in_(led)
                )
            )
        ).all()
        if not members:
            raise Forbidden("agent: only their team leads and admins see an agent's reports")
        teams = frozenset({team}) if team is not None else frozenset(members)
        return Scope(agent_ids=frozenset({agent}), team_ids=teams, channels=channels)
    if agent == agent_id or not led:
        return Scope(agent_ids=frozenset({agent_id}), channels=channels)
    return Scope(team_ids=frozenset({team}) if team is not None else led, channels=channels)


def conversation_scope(scope: Scope) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if scope.agent_ids is not None:
        where.append(Conversation.assignee_id.in_(scope.agent_ids))
    if scope.team_ids is not None:
        where.append(Conversation.team_id.in_(scope.team_ids))
    if scope.channels is not None:
        where.append(Conversation.channel.in_(scope.channels))
    return where


def columns_scope(scope: Scope, agent: Any, team: Any, channel: Any) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if scope.agent_ids is not None:
        where.append(agent.in_(scope.agent_ids))
    if scope.team_ids is not None:
        where.append(team.in_(scope.team_ids))
    if scope.channels is not None:
        where.append(channel.in_(scope.channels))
    return where
