"""Applying the assignment policy to the database: one conversation, the waiting queue, or an
agent who left. The decisions themselves are `routing.assignment.choose_agent`'s."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from routing.assignment import Candidate, Decision, choose_agent
from routing.events import ConversationLike, EventLog, conversation_summary
from storage.bulk import update_by_id
from storage.models import Agent, Conversation, Customer, TeamMember

_AGENTS = select(
    Agent.id, Agent.presence, Agent.active, Agent.capacity, Agent.last_assigned_at
).where(Agent.active)
_OPEN_COUNTS = (
    select(Conversation.assignee_id, func.count())
    .where(Conversation.status == "open", Conversation.assignee_id.is_not(None))
    .group_by(Conversation.assignee_id)
)
_MEMBERS = select(TeamMember.team_id, TeamMember.agent_id)


class Roster:
    """The agents with their load, read once per unit of work and kept current as it assigns."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._candidates: dict[int, Candidate] | None = None
        self._assigned: set[int] = set()

    @property
    def candidates(self) -> dict[int, Candidate]:
        if self._candidates is None:
            self._candidates = {c.id: c for c in load_candidates(self._session)}
        return self._candidates

    def choose(self, conversation: ConversationLike, owner_id: int | None) -> Decision:
        return choose_agent(
            current_assignee=conversation.assignee_id,
            owner_id=owner_id,
            team_id=conversation.team_id,
            candidates=list(self.candidates.values()),
        )

    def moved(self, previous: int | None, new: int | None, now: datetime) -> None:
        """One open conversation moved from `previous` to `new` (either may be nobody)."""
        if self._candidates is None:
            return
        if previous is not None and (left := self._candidates.get(previous)):
            self._candidates[previous] = dataclasses.replace(
                left, open_count=max(0, left.open_count - 1)
            )
        if new is not None and (took := self._candidates.get(new)):
            self._candidates[new] = dataclasses.replace(
                took, open_count=took.open_count + 1, last_assigned_at=now
            )
            self._assigned.add(new)

    def snapshot(self) -> dict[int, Candidate] | None:
        return dict(self._candidates) if self._candidates is not None else None

    def restore(self, snapshot: dict[int, Candidate] | None) -> None:
        """Undo what a rolled-back savepoint did to the agents' load."""
        self._candidates = snapshot

    def save(self) -> None:
        """Write each assigned agent's last assignment time once, rather than once per message."""
        rows = [
            {"id": agent_id, "last_assigned_at": candidate.last_assigned_at}
            for agent_id in sorted(self._assigned)
            if (candidate := self.candidates.get(agent_id)) is not None
        ]
        self._session.flush()  # an agent changed through the ORM is written first, not after
        update_by_id(self._session, Agent, rows)
        self._assigned.clear()


def load_candidates(session: Session) -> list[Candidate]:
    agents = session.execute(_AGENTS).all()
    counts: dict[int | None, int] = {
        assignee: count for assignee, count in session.execute(_OPEN_COUNTS)
    }
    teams: dict[int, set[int]] = {}
    for team_id, agent_id in session.execute(_MEMBERS):
        teams.setdefault(agent_id, set()).add(team_id)
    return [
        Candidate(
            id=agent.id,
            presence=agent.presence,
            active=agent.active,
            capacity=agent.capacity,
            open_count=counts.get(agent.id, 0),
            last_assigned_at=agent.last_assigned_at,
            team_ids=frozenset(teams.get(agent.id, ())),
        )
        for agent in agents
    ]


def set_assignee(
    session: Session,
    conversation: Conversation,
    agent_id: int | None,
    log: EventLog,
    *,
    reason: str,
    now: datetime,
    actor_agent_id: int | None = None,
    roster: Roster | None = None,
) -> bool:
    """Record a change of assignee (and nothing when it is the same one)."""
    previous = conversation.assignee_id
    if previous == agent_id:
        return False
    conversation.assignee_id = agent_id
    if agent_id is not None and (agent := session.get(Agent, agent_id)) is not None:
        agent.last_assigned_at = now
    if roster is not None and conversation.status == "open":
        roster.moved(previous, agent_id, now)
    log_assignment(log, conversation, previous, reason=reason, actor_agent_id=actor_agent_id)
    return True


def log_assignment(
    log: EventLog,
    conversation: ConversationLike,
    previous: int | None,
    *,
    reason: str,
    actor_agent_id: int | None = None,
) -> None:
    agent_id = conversation.assignee_id
    log.add(
        "conversation.assigned" if agent_id is not None else "conversation.unassigned",
        conversation,
        {
            "from": previous,
            "to": agent_id,
            "reason": reason,
            "conversation": conversation_summary(conversation),
        },
        actor_agent_id=actor_agent_id,
    )


def assign_waiting(
    session: Session,
    log: EventLog,
    *,
    now: datetime,
    roster: Roster | None = None,
    limit: int = 200,
) -> int:
    """Give waiting unassigned conversations, longest-waiting first, to whoever is free now."""
    waiting = session.execute(
        select(Conversation, Customer.owner_id)
        .join(Customer, Customer.id == Conversation.customer_id)
        .where(Conversation.status == "open", Conversation.assignee_id.is_(None))
        .order_by(
            func.coalesce(Conversation.waiting_since, Conversation.created_at), Conversation.id
        )
        .limit(limit)
    ).all()
    if not waiting:
        return 0
    roster = roster or Roster(session)
    assigned = 0
    for conversation, owner_id in waiting:
        decision = roster.choose(conversation, owner_id)
        if decision.agent_id is None:
            continue
        set_assignee(
            session,
            conversation,
            decision.agent_id,
            log,
            reason=decision.reason,
            now=now,
            roster=roster,
        )
        assigned += 1
    return assigned


def release_agent(session: Session, agent_id: int, log: EventLog, *, now: datetime) -> int:
    """An agent signed off or was deactivated: their open conversations go to someone else,
    or back to the team queue."""
    conversations = session.scalars(
        select(Conversation).where(
            Conversation.assignee_id == agent_id, Conversation.status == "open"
        )
    ).all()
    for conversation in conversations:
        set_assignee(session, conversation, None, log, reason="agent_unavailable", now=now)
    session.flush()
    assign_waiting(session, log, now=now)
    return len(conversations)
