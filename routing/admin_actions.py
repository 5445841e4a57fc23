"""What admins do to teams and agents' team memberships, each recorded as an event.

Units of work in the style of `routing.actions`: `fn(session, ...) -> (result, EventLog)`, run
and published by `Actions.run`. Membership lives only in `team_members`, which the router's
`Roster` reads afresh for every unit of work, so a change here steers the next assignment."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from routing.actions import (
    MAX_FAQ_ANSWER,
    MAX_FAQ_QUESTION,
    Conflict,
    Invalid,
    NotFound,
    faq_suggestion_summary,
)
from routing.dispatch import assign_waiting
from routing.events import EventLog
from storage.models import (
    Agent,
    Conversation,
    FaqEntry,
    FaqSuggestion,
    RoutingRule,
    Team,
    TeamMember,
)


@dataclass(frozen=True, slots=True)
class Member:
    agent_id: int
    lead: bool = False


def team_summary(team: Team, members: Sequence[TeamMember]) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        "members": [
            {"agent_id": m.agent_id, "lead": m.lead}
            for m in sorted(members, key=lambda m: m.agent_id)
        ],
    }


def _members_of(session: Session, team_id: int) -> list[TeamMember]:
    return list(session.scalars(select(TeamMember).where(TeamMember.team_id == team_id)))


def _check_name(session: Session, name: str, team_id: int | None) -> None:
    taken = session.scalar(select(Team.id).where(Team.name == name))
    if taken is not None and taken != team_id:
        raise Conflict(f"a team named {name!r} exists")


def _check_agents(session: Session, agent_ids: Collection[int]) -> None:
    known = set(session.scalars(select(Agent.id).where(Agent.id.in_(agent_ids))))
    if missing := sorted(set(agent_ids) - known):
        raise NotFound(f"agent {missing[0]}")


def _set_members(session: Session, team_id: int, members: Sequence[Member]) -> None:
    session.execute(delete(TeamMember).where(TeamMember.team_id == team_id))
    session.add_all(
        TeamMember(team_id=team_id, agent_id=m.agent_id, lead=m.lead)
        for m in {m.agent_id: m for m in members}.values()
    )


def save_team(
    session: Session,
    team_id: int | None,
    name: str | None,
    members: Sequence[Member] | None,
    actor_agent_id: int,
    now: datetime,
) -> tuple[dict[str, Any], EventLog]:
    """Create (`team_id=None`) or change a team: its name and/or its whole member list. A taken
    name is a `Conflict`, an unknown agent `NotFound`."""
    log = EventLog(session)
    if name is not None:
        _check_name(session, name, team_id)
    if members is not None:
        _check_agents(session, [m.agent_id for m in members])
    if team_id is None:
        if name is None:
            raise NotFound("team name")  # the API's body model makes this unreachable
        team = Team(name=name)
        session.add(team)
        session.flush()
    elif (found := session.get(Team, team_id)) is None:
        raise NotFound(f"team {team_id}")
    else:
        team = found
        if name is not None:
            team.name = name
    if members is not None:
        _set_members(session, team.id, members)
    session.flush()
    summary = team_summary(team, _members_of(session, team.id))
    log.add(
        "team.created" if team_id is None else "team.updated",
        None,
        {"team": summary},
        actor_agent_id=actor_agent_id,
    )
    if members is not None:
        assign_waiting(session, log, now=now)  # new members may take the team's queue
    return summary, log


def delete_team(session: Session, team_id: int, actor_agent_id: int) -> tuple[None, EventLog]:
    """Delete a team that no conversation belongs to (`Conflict` otherwise: deleting it would
    make its conversations team-less, and so visible to every agent)."""
    log = EventLog(session)
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(f"team {team_id}")
    count = session.scalar(select(func.count()).where(Conversation.team_id == team_id)) or 0
    if count:
        raise Conflict(
            f"team {team.name!r} has {count} conversation(s); move them to another team first"
        )
    rules = session.scalar(select(func.count()).where(RoutingRule.team_id == team_id)) or 0
    if rules:
        raise Conflict(
            f"team {team.name!r} is the team of {rules} routing rule(s); change them first"
        )
    session.delete(team)
    log.add("team.deleted", None, {"id": team_id, "name": team.name}, actor_agent_id=actor_agent_id)
    return None, log


def update_agent_details(
    session: Session,
    agent_id: int,
    name: str | None,
    team_ids: Sequence[int] | None,
    actor_agent_id: int,
    now: datetime,
) -> tuple[list[int], EventLog]:
    """Rename the agent and/or make them a member of exactly `team_ids` (keeping their lead flag
    where they stay); returns their team ids. Unknown teams are `NotFound`, nothing changed."""
    log = EventLog(session)
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id}")
    current = set(
        session.scalars(select(TeamMember.team_id).where(TeamMember.agent_id == agent_id))
    )
    wanted = current if team_ids is None else set(team_ids)
    known = set(session.scalars(select(Team.id).where(Team.id.in_(wanted))))
    if missing := sorted(wanted - known):
        raise NotFound(f"team {missing[0]}")
    if name is not None and name != agent.name:
        agent.name = name
        log.add(
            "agent.updated",
            None,
            {"agent_id": agent_id, "name": name},
            actor_agent_id=actor_agent_id,
        )
    if wanted != current:
        session.execute(
            delete(TeamMember).where(
                TeamMember.agent_id == agent_id, TeamMember.team_id.in_(current - wanted)
            )
        )
        session.add_all(TeamMember(team_id=t, agent_id=agent_id) for t in sorted(wanted - current))
        session.flush()
        log.add(
            "agent.teams_changed",
            None,
            {"agent_id": agent_id, "team_ids": sorted(wanted)},
            actor_agent_id=actor_agent_id,
        )
        assign_waiting(session, log, now=now)  # they may take their new teams' queues
    return sorted(wanted), log


def teams_of(session: Session, agent_ids: Collection[int]) -> dict[int, list[int]]:
    """Each agent's team ids."""
    found: dict[int, list[int]] = {agent_id: [] for agent_id in agent_ids}
    for team_id, agent_id in session.execute(
        select(TeamMember.team_id, TeamMember.agent_id)
        .where(TeamMember.agent_id.in_(agent_ids))
        .order_by(TeamMember.team_id)
    ):
        found[agent_id].append(team_id)
    return found


def _pending_suggestion(session: Session, suggestion_id: int) -> FaqSuggestion:
    suggestion = session.get(FaqSuggestion, suggestion_id, with_for_update=True)
    if suggestion is None:
        raise NotFound(f"FAQ suggestion {suggestion_id}")
    if suggestion.status != "pending":
        raise Conflict(f"FAQ suggestion {suggestion_id} was {suggestion.status} already")
    return suggestion


def approve_faq_suggestion(
    session: Session,
    suggestion_id: int,
    actor_agent_id: int,
    now: datetime,
    question: str | None = None,
    answer: str | None = None,
    alternatives: Sequence[str] = (),
    tags: Sequence[str] = (),
) -> tuple[dict[str, Any], EventLog]:
    """An admin approves a pending suggestion, edited or as it is: it becomes an enabled FAQ
    entry (the router's bot picks it up on its next message). Returns the suggestion's summary
    with its `entry_id`; one reviewed already is a `Conflict`."""
    log = EventLog(session)
    suggestion = _pending_suggestion(session, suggestion_id)
    question = (suggestion.question if question is None else question).strip()
    answer = (suggestion.answer if answer is None else answer).strip()
    if not question or len(question) > MAX_FAQ_QUESTION:
        raise Invalid(f"question: 1 to {MAX_FAQ_QUESTION} characters")
    if not answer or len(answer) > MAX_FAQ_ANSWER:
        raise Invalid(f"answer: 1 to {MAX_FAQ_ANSWER} characters")
    entry = FaqEntry(
        question=question,
        alternatives=[a.strip() for a in alternatives if a.strip()],
        answer=answer,
        language=suggestion.language,
        tags=[t.strip() for t in tags if t.strip()],
        enabled=True,
        updated_by=actor_agent_id,
        created_at=now,
        updated_at=now,
    )
    session.add(entry)
    session.flush()
    suggestion.status, suggestion.entry_id = "approved", entry.id
    suggestion.reviewed_by, suggestion.reviewed_at = actor_agent_id, now
    session.flush()
    summary = faq_suggestion_summary(suggestion)
    log.add("faq_suggestion.approved", None, {"suggestion": summary}, actor_agent_id=actor_agent_id)
    return summary, log


def reject_faq_suggestion(
    session: Session, suggestion_id: int, actor_agent_id: int, now: datetime
) -> tuple[dict[str, Any], EventLog]:
    """An admin rejects a pending suggestion; one reviewed already is a `Conflict`."""
    log = EventLog(session)
    suggestion = _pending_suggestion(session, suggestion_id)
    suggestion.status = "rejected"
    suggestion.reviewed_by, suggestion.reviewed_at = actor_agent_id, now
    session.flush()
    summary = faq_suggestion_summary(suggestion)
    log.add("faq_suggestion.rejected", None, {"suggestion": summary}, actor_agent_id=actor_agent_id)
    return summary, log
