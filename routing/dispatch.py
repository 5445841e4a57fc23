"""Applying the assignment policy to the database: one conversation, the waiting queue, or an
agent who left. The decisions themselves are `routing.assignment.choose_agent`'s."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from routing.assignment import Candidate, Decision, choose_agent
from routing.events import EventLog, conversation_summary
from storage.models import Agent, Conversation, Customer, TeamMember, utcnow


async def load_candidates(session: AsyncSession) -> list[Candidate]:
    agents = (await session.scalars(select(Agent).where(Agent.active))).all()
    counts = dict(
        (
            await session.execute(
                select(Conversation.assignee_id, func.count())
                .where(Conversation.status == "open", Conversation.assignee_id.is_not(None))
                .group_by(Conversation.assignee_id)
            )
        )
        
        .all()
    )
    teams: dict[int, set[int]] = {}
    for team_id, agent_id in (
        await session.execute(select(TeamMember.team_id, TeamMember.agent_id))
    ):
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


async def set_assignee(
    session: AsyncSession,
    conversation: Conversation,
    agent_id: int | None,
    log: EventLog,
    *,
    reason: str,
    actor_agent_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Record a change of assignee (and nothing when it is the same one)."""
    previous = conversation.assignee_id
    if previous == agent_id:
        return False
    conversation.assignee_id = agent_id
    if agent_id is not None:
        agent = await session.get(Agent, agent_id)
        if agent is not None:
            agent.last_assigned_at = now or utcnow()
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
    return True


async def assign(
    session: AsyncSession, conversation: Conversation, log: EventLog, *, now: datetime
) -> Decision:
    """Run the policy for one conversation and record the outcome."""
    customer = await session.get(Customer, conversation.customer_id)
    decision = choose_agent(
        current_assignee=conversation.assignee_id,
        owner_id=customer.owner_id if customer else None,
        team_id=conversation.team_id,
        candidates=await load_candidates(session),
    )
    if decision.agent_id is not None or conversation.assignee_id is not None:
        await set_assignee(
            session, conversation, decision.agent_id, log, reason=decision.reason, now=now
        )
    return decision


async def assign_waiting(
    session: AsyncSession, log: EventLog, *, now: datetime, limit: int = 200
) -> int:
    """Give waiting unassigned conversations, longest-waiting first, to whoever is free now."""
    waiting = (
        (
            await session.execute(
                select(Conversation, Customer.owner_id)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(Conversation.status == "open", Conversation.assignee_id.is_(None))
                .order_by(
                    func.coalesce(Conversation.waiting_since, Conversation.created_at),
                    Conversation.id,
                )
                .limit(limit)
            )
        )
        
        .all()
    )
    if not waiting:
        return 0
    candidates = {c.id: c for c in await load_candidates(session)}
    assigned = 0
    for conversation, owner_id in waiting:
        decision = choose_agent(
            current_assignee=None,
            owner_id=owner_id,
            team_id=conversation.team_id,
            candidates=list(candidates.values()),
        )
        if decision.agent_id is None:
            continue
        await set_assignee(
            session, conversation, decision.agent_id, log, reason=decision.reason, now=now
        )
        chosen = candidates[decision.agent_id]
        candidates[chosen.id] = dataclasses.replace(
            chosen, open_count=chosen.open_count + 1, last_assigned_at=now
        )
        assigned += 1
    return assigned


async def release_agent(
    session: AsyncSession, agent_id: int, log: EventLog, *, now: datetime
) -> int:
    """An agent signed off or was deactivated: their open conversations go to someone else,
    or back to the team queue."""
    conversations = (
        await session.scalars(
            select(Conversation).where(
                Conversation.assignee_id == agent_id, Conversation.status == "open"
            )
        )
    ).all()
    for conversation in conversations:
        await set_assignee(session, conversation, None, log, reason="agent_unavailable", now=now)
    await session.flush()
    await assign_waiting(session, log, now=now)
    return len(conversations)
