"""The SLA watcher: part of the router's periodic upkeep. It reads only the conversations whose
`sla_due_at` has come (an indexed range), warns the assignee and the team's leads before a
deadline, and records a missed deadline as a breach: each once, however often it runs."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from routing.business_hours import team_calendar
from routing.config import RoutingConfig
from routing.events import EventLog, conversation_summary
from routing.mentions import notify
from routing.sla import METRICS, Clocks
from storage.models import Conversation, SlaBreach, TeamMember

logger = logging.getLogger(__name__)

BATCH = 500
"""Conversations looked at per run; the rest wait for the next tick (they stay due)."""


def watch_sla(session: Session, log: EventLog, config: RoutingConfig, now: datetime) -> int:
    """Send the warnings and record the breaches that have come due; returns how many
    conversations were looked at. No query at all when no policy is configured."""
    if not config.sla.policies:
        return 0
    policies = {policy.name: policy for policy in config.sla.policies}
    due = session.scalars(
        select(Conversation)
        .where(Conversation.sla_due_at <= now)
        .order_by(Conversation.sla_due_at)
        .limit(BATCH)
    ).all()
    for conversation in due:
        policy = policies.get(conversation.sla_policy or "")
        clocks = Clocks(conversation, policy, team_calendar(session, config, conversation.team_id))
        if policy is not None and not clocks.paused:
            _look(session, log, clocks, now)
        clocks.save()
        if conversation.sla_due_at is not None and conversation.sla_due_at <= now:
            conversation.sla_due_at = None  # never look at the same moment twice
    session.flush()
    return len(due)


def _look(session: Session, log: EventLog, clocks: Clocks, now: datetime) -> None:
    for metric in METRICS:
        due = clocks.due(metric)
        if due is None:
            continue
        warn_at = clocks.warn_at.get(metric)
        if warn_at is not None and datetime.fromisoformat(warn_at) <= now:
            del clocks.warn_at[metric]
            clocks.warned.append(metric)
            if due > now:
                _warn(session, log, clocks, metric, due, now)
        if due <= now and clocks.breached.get(metric) != due.isoformat():
            clocks.breached[metric] = due.isoformat()
            clocks.warn_at.pop(metric, None)
            _breach(session, log, clocks, metric, due, now)


def _data(clocks: Clocks, metric: str, due: datetime) -> dict[str, Any]:
    assert clocks.policy is not None
    return {
        "metric": metric,
        "due_at": due.isoformat(),
        "policy": clocks.policy.name,
        "conversation": conversation_summary(clocks.conversation),
    }


def _warn(
    session: Session, log: EventLog, clocks: Clocks, metric: str, due: datetime, now: datetime
) -> None:
    conversation = clocks.conversation
    log.add("sla.warning", conversation, _data(clocks, metric, due))
    recipients: list[int] = []
    if conversation.assignee_id is not None:
        recipients.append(conversation.assignee_id)
    if conversation.team_id is not None:
        leads = session.scalars(
            select(TeamMember.agent_id).where(
                TeamMember.team_id == conversation.team_id, TeamMember.lead.is_(True)
            )
        )
        recipients += [lead for lead in leads if lead not in recipients]
    for agent_id in recipients:
        notify(
            session,
            log,
            agent_id=agent_id,
            kind="sla_warning",
            conversation=conversation,
            message_id=None,
            actor_agent_id=None,
            text=f"{metric} {due.isoformat()} {conversation.subject}",
            now=now,
        )


def _breach(
    session: Session, log: EventLog, clocks: Clocks, metric: str, due: datetime, now: datetime
) -> None:
    conversation = clocks.conversation
    assert clocks.policy is not None
    try:
        with session.begin_nested():
            session.add(
                SlaBreach(
                    conversation_id=conversation.id,
                    metric=metric,
                    policy=clocks.policy.name,
                    due_at=due,
                    breached_at=now,
                    channel=conversation.channel,
                    team_id=conversation.team_id,
                    assignee_id=conversation.assignee_id,
                )
            )
    except IntegrityError:  # another watcher recorded it first
        logger.debug("breach of %s %s already recorded", conversation.id, metric)
        return
    log.add("sla.breached", conversation, _data(clocks, metric, due))
