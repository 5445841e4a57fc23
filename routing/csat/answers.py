"""Recording a customer's answer, however it came (a chat message or a signed link): the
rating, with a word to the team's leads and the assignee when it is low, and a comment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.config import CsatConfig
from routing.csat.views import csat_summary
from routing.events import ConversationLike, EventLog
from routing.mentions import notify
from storage.models import CsatSurvey, TeamMember

MAX_COMMENT = 2000


def record_rating(
    session: Session,
    log: EventLog,
    survey: CsatSurvey,
    conversation: ConversationLike,
    rating: int,
    config: CsatConfig,
    now: datetime,
    *,
    comment: str = "",
) -> None:
    """Record an answer (the first wins: the caller checks the survey is still open), and on
    a low score tell the team's leads and the assignee. Never reopens the conversation."""
    survey.rating = rating
    survey.status = "answered"
    survey.answered_at = now
    survey.comment = comment[:MAX_COMMENT]
    session.flush()
    log.add("csat.answered", conversation, {"csat": csat_summary(survey)})
    if rating > config.low_score:
        return
    told = set(
        session.scalars(
            select(TeamMember.agent_id).where(
                TeamMember.team_id == survey.team_id, TeamMember.lead.is_(True)
            )
        )
        if survey.team_id is not None
        else ()
    )
    if survey.agent_id is not None:
        told.add(survey.agent_id)
    stars = "★" * rating + "☆" * (5 - rating)
    for agent_id in sorted(told):
        notify(
            session,
            log,
            agent_id=agent_id,
            kind="csat_low",
            conversation=conversation,
            message_id=None,
            actor_agent_id=None,
            text=f"{stars} {survey.comment}".strip(),
            now=now,
        )


def record_comment(
    session: Session,
    log: EventLog,
    survey: CsatSurvey,
    conversation: ConversationLike,
    comment: str,
) -> None:
    """Add the customer's comment to an answered survey (the first comment stays)."""
    survey.comment = comment.strip()[:MAX_COMMENT]
    session.flush()
    log.add("csat.commented", conversation, {"csat": csat_summary(survey)})
