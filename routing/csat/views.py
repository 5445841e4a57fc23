"""How a survey is shown: in events and the API, in the inbox (its status as of now), and in
the customer's 360° panel (their answers so far)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import CsatSurvey

LATEST_RATINGS = 5


def csat_summary(survey: CsatSurvey) -> dict[str, Any]:
    """A survey as events and the API show it."""
    return {
        "id": survey.id,
        "conversation_id": survey.conversation_id,
        "channel": survey.channel,
        "status": survey.status,
        "rating": survey.rating,
        "comment": survey.comment,
        "agent_id": survey.agent_id,
        "team_id": survey.team_id,
        "sent_at": survey.sent_at.isoformat() if survey.sent_at else None,
        "expires_at": survey.expires_at.isoformat() if survey.expires_at else None,
        "answered_at": survey.answered_at.isoformat() if survey.answered_at else None,
    }


def csat_view(
    survey: CsatSurvey | None, now: datetime, *, low_score: int = 2
) -> dict[str, Any] | None:
    """A survey for the inbox, its status as of `now` (an unanswered one past its time is
    `expired`), and whether its rating is `low`."""
    if survey is None:
        return None
    view = csat_summary(survey)
    if survey.status == "sent" and now >= survey.expires_at:
        view["status"] = "expired"
    view["low"] = survey.rating is not None and survey.rating <= low_score
    return view


async def conversation_csat(
    session: AsyncSession, conversation_id: int, now: datetime, *, low_score: int = 2
) -> dict[str, Any] | None:
    """The conversation's latest survey and its answer, if it was asked."""
    survey = await session.scalar(
        select(CsatSurvey)
        .where(CsatSurvey.conversation_id == conversation_id)
        .order_by(CsatSurvey.id.desc())
        .limit(1)
    )
    return csat_view(survey, now, low_score=low_score)


async def customer_csat(
    session: AsyncSession, customer_id: int, *, low_score: int = 2
) -> dict[str, Any]:
    """For the 360° panel: how many surveys the customer answered, their average rating, and
    the latest answers."""
    count, average = (
        await session.execute(
            select(func.count(CsatSurvey.rating), func.avg(CsatSurvey.rating)).where(
                CsatSurvey.customer_id == customer_id, CsatSurvey.rating.is_not(None)
            )
        )
    ).one()
    latest = (
        await session.scalars(
            select(CsatSurvey)
            .where(CsatSurvey.customer_id == customer_id, CsatSurvey.rating.is_not(None))
            .order_by(CsatSurvey.answered_at.desc(), CsatSurvey.id.desc())
            .limit(LATEST_RATINGS)
        )
    ).all()
    return {
        "answered": int(count or 0),
        "average": round(float(average), 2) if average is not None else None,
        "latest": [
            {**csat_summary(survey), "low": (survey.rating or 0) <= low_score} for survey in latest
        ],
    }
