"""The figures of the summary, channel, team and agent tables (docs/reports.md, "The figures"),
each counted by its moment in the period and broken down by bucket, channel, team or agent."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Literal

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from routing.reports.periods import Period
from routing.reports.scope import Scope, columns_scope, conversation_scope
from routing.reports.sql import Sql, percentiles, sums
from storage.models import Conversation, CsatSurvey, Event, SlaBreach

Dimension = Literal["bucket", "channel", "team", "agent"]
FIGURES = (
    "opened",
    "resolved",
    "first_response_median",
    "first_response_p90",
    "resolution_median",
    "resolution_p90",
    "breaches",
    "csat_sent",
    "csat_answered",
    "csat_average",
    "csat_response_rate",
    "bot_conversations",
    "bot_resolved",
    "handed_over",
    "bot_resolution_rate",
    "handoff_rate",
)
"""The columns of the summary, channel, team and agent tables, after the row's key and label.
Durations are in seconds, rates between 0 and 1; `None` where there is nothing to measure."""


def _conversation_key(sql: Sql, dimension: Dimension, moment: Any) -> Any:
    """What a conversation figure groups by: `moment`'s bucket, or the conversation's channel,
    team or assignee."""
    if dimension == "bucket":
        return sql.bucket(moment)
    return sql.unindexed(
        {
            "channel": Conversation.channel,
            "team": Conversation.team_id,
            "agent": Conversation.assignee_id,
        }[dimension]
    )


async def figures(
    session: AsyncSession, period: Period, scope: Scope, dimension: Dimension
) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    """Every figure in `FIGURES` per key of `dimension` (bucket day number, channel, team id or
    agent id; `None` for conversations without a team or assignee), and over everything."""
    (rows,), totals = await figures_by(session, period, scope, (dimension,))
    return rows, totals


async def figures_by(
    session: AsyncSession, period: Period, scope: Scope, dimensions: Sequence[Dimension]
) -> tuple[list[dict[Any, dict[str, Any]]], dict[str, Any]]:
    """`figures` for each of `dimensions` at once: one scan of each table serves them all (the
    reports page asks for channels, teams and agents together)."""
    sql = Sql(session.get_bind().dialect.name, period)
    since, until = period.since, period.until
    tables: list[dict[Any, dict[str, Any]]] = [defaultdict(blank) for _ in dimensions]
    totals = blank()
    ratings: list[dict[Any, int]] = [defaultdict(int) for _ in dimensions]

    def put(
        found: list[dict[Any, Any]], overall: Any, fill: Callable[[dict[str, Any], Any], None]
    ) -> None:
        for table, by_key in zip(tables, found, strict=True):
            for k, stats in by_key.items():
                fill(table[k], stats)
        fill(totals, overall)

    # Opened, which of those the bot took turns in, handed over or resolved (so far), and
    # their first response times: one scan of the period's conversations. A handover comes
    # after the opening, so the events index range starts at the period's start.
    opened_in_period = (
        Conversation.created_at >= since,
        Conversation.created_at < until,
        *conversation_scope(scope),
    )
    bot = sql.bot_flag()
    handovers = (
        select(Event.conversation_id)
        .where(Event.type == "conversation.handed_over", Event.created_at >= since)
        .distinct()
        .subquery("handovers")
    )
    handed = bot & handovers.c.conversation_id.is_not(None)

    def opened(row: dict[str, Any], stats: dict[str, Any]) -> None:
        count, bots, handed_over, bot_resolved = stats["counts"]
        row.update(opened=count, bot_conversations=bots, handed_over=handed_over)
        row.update(bot_resolved=bot_resolved)
        row["first_response_median"], row["first_response_p90"] = stats["median"], stats["p90"]

    put(
        *await percentiles(
            session,
            sql,
            [_conversation_key(sql, d, Conversation.created_at) for d in dimensions],
            sql.seconds(Conversation.first_response_at, Conversation.created_at),
            select()
            .select_from(Conversation)
            .outerjoin(handovers, handovers.c.conversation_id == Conversation.id)
            .where(*opened_in_period),
            func.count(),
            func.sum(case((bot, 1), else_=0)),
            func.sum(case((handed, 1), else_=0)),
            func.sum(case((bot & (Conversation.status == "resolved") & ~handed, 1), else_=0)),
        ),
        opened,
    )

    # Resolutions in the period (each one counts) and how long after opening they came.
    resolutions = sql.resolutions()
    resolved_at = resolutions.c.created_at

    def resolved(row: dict[str, Any], stats: dict[str, Any]) -> None:
        row["resolved"] = stats["n"]
        row["resolution_median"], row["resolution_p90"] = stats["median"], stats["p90"]

    put(
        *await percentiles(
            session,
            sql,
            [_conversation_key(sql, d, resolved_at) for d in dimensions],
            sql.seconds(resolved_at, Conversation.created_at),
            select()
            .select_from(resolutions)
            .join(Conversation, Conversation.id == resolutions.c.conversation_id)
            .where(resolved_at >= since, resolved_at < until, *conversation_scope(scope)),
        ),
        resolved,
    )

    # SLA breaches, by when they happened and whose they were then.
    breach_keys = {
        "bucket": sql.bucket(SlaBreach.breached_at),
        "channel": SlaBreach.channel,
        "team": SlaBreach.team_id,
        "agent": SlaBreach.assignee_id,
    }

    def breached(row: dict[str, Any], counts: list[int]) -> None:
        row["breaches"] = counts[0]

    put(
        *await sums(
            session,
            [breach_keys[d] for d in dimensions],
            select().where(
                SlaBreach.breached_at >= since,
                SlaBreach.breached_at < until,
                *columns_scope(scope, SlaBreach.assignee_id, SlaBreach.team_id, SlaBreach.channel),
            ),
            func.count(),
        ),
        breached,
    )

    # Surveys sent in the period, and their answers.
    survey_keys = {
        "bucket": sql.bucket(CsatSurvey.sent_at),
        "channel": CsatSurvey.channel,
        "team": CsatSurvey.team_id,
        "agent": CsatSurvey.agent_id,
    }
    answered = CsatSurvey.answered_at.is_not(None) & CsatSurvey.rating.is_not(None)
    found, overall = await sums(
        session,
        [survey_keys[d] for d in dimensions],
        select().where(
            CsatSurvey.sent_at >= since,
            CsatSurvey.sent_at < until,
            *columns_scope(scope, CsatSurvey.agent_id, CsatSurvey.team_id, CsatSurvey.channel),
        ),
        func.count(),
        func.sum(case((answered, 1), else_=0)),
        func.sum(case((answered, CsatSurvey.rating), else_=0)),
    )
    for table, by_key, rating_sums in zip(tables, found, ratings, strict=True):
        for k, (sent, answers, rating) in by_key.items():
            table[k].update(csat_sent=sent, csat_answered=answers)
            rating_sums[k] = rating
    totals.update(csat_sent=overall[0], csat_answered=overall[1])
    for table, rating_sums in zip(tables, ratings, strict=True):
        for k, row in table.items():
            rates(row, rating_sums.get(k, 0))
    rates(totals, overall[2])
    return [dict(table) for table in tables], totals


_COUNTS = frozenset(
    {
        "opened",
        "resolved",
        "breaches",
        "csat_sent",
        "csat_answered",
        "bot_conversations",
        "bot_resolved",
        "handed_over",
    }
)


def blank() -> dict[str, Any]:
    return {name: 0 if name in _COUNTS else None for name in FIGURES}


def rates(row: dict[str, Any], rating_sum: int) -> None:
    def ratio(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    row["csat_average"] = ratio(rating_sum, row["csat_answered"])
    row["csat_response_rate"] = ratio(row["csat_answered"], row["csat_sent"])
    row["bot_resolution_rate"] = ratio(row["bot_resolved"], row["bot_conversations"])
    row["handoff_rate"] = ratio(row["handed_over"], row["bot_conversations"])
