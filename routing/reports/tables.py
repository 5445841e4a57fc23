"""The reports as tables: rows, columns and totals for each report name, labelled for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from routing.reports.figures import FIGURES, Dimension, blank, figures, figures_by, rates
from routing.reports.periods import WEEKDAYS, Period
from routing.reports.scope import Scope, columns_scope, conversation_scope
from routing.reports.sql import Sql
from storage.models import Agent, Conversation, CsatSurvey, Message, Team

REPORTS = ("summary", "channels", "teams", "agents", "hours", "csat")
WORK_MEM = "64MB"


@dataclass(slots=True)
class Table:
    """A report's rows and the row of totals over the whole period and scope."""

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    totals: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "rows": self.rows, "totals": self.totals}


_DIMENSIONS: dict[str, Dimension] = {
    "summary": "bucket",
    "channels": "channel",
    "teams": "team",
    "agents": "agent",
}


async def report(session: AsyncSession, name: str, period: Period, scope: Scope) -> Table:
    """The report called `name` (one of `REPORTS`); raises `KeyError` for any other name."""
    await _roomy(session)
    if name == "hours":
        return await busiest_hours(session, period, scope)
    if name == "csat":
        return await csat_ratings(session, period, scope)
    dimension = _DIMENSIONS[name]
    by_key, totals = await figures(session, period, scope, dimension)
    return await _table(session, period, dimension, by_key, totals)


async def every_report(session: AsyncSession, period: Period, scope: Scope) -> dict[str, Table]:
    """All of `REPORTS`, as the reports page shows them: the channel, team and agent tables
    come from one pass over the rows (they share every total with the summary, too)."""
    await _roomy(session)
    tables: dict[str, Table] = {}
    by_key, totals = await figures(session, period, scope, "bucket")
    tables["summary"] = await _table(session, period, "bucket", by_key, totals)
    breakdowns = ("channels", "teams", "agents")
    found, totals = await figures_by(
        session, period, scope, [_DIMENSIONS[name] for name in breakdowns]
    )
    for name, by_key in zip(breakdowns, found, strict=True):
        tables[name] = await _table(session, period, _DIMENSIONS[name], by_key, totals)
    tables["hours"] = await busiest_hours(session, period, scope)
    tables["csat"] = await csat_ratings(session, period, scope)
    return {name: tables[name] for name in REPORTS}


async def _roomy(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # A year's durations sort in memory, not in temporary files (PostgreSQL's default 4MB
        # spilled); for this transaction only.
        await session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))


async def _table(
    session: AsyncSession,
    period: Period,
    dimension: Dimension,
    by_key: dict[Any, dict[str, Any]],
    totals: dict[str, Any],
) -> Table:
    columns = ("key", "label", *FIGURES)
    if dimension == "bucket":
        epoch = date(1970, 1, 1)
        rows = []
        for first in period.buckets():
            number = (first - epoch).days
            rows.append(
                {
                    "key": first.isoformat(),
                    "label": first.isoformat(),
                    **by_key.get(number, _filled()),
                }
            )
        return Table(columns, rows, {"key": None, "label": "", **totals})
    names = await _names(session, dimension, [k for k in by_key if k is not None])
    ordered = sorted(
        by_key.items(), key=lambda item: (item[0] is None, names.get(item[0], str(item[0])))
    )
    rows = [
        {"key": k, "label": names.get(k, "") if k is not None else "", **row} for k, row in ordered
    ]
    return Table(columns, rows, {"key": None, "label": "", **totals})


def _filled() -> dict[str, Any]:
    row = blank()
    rates(row, 0)
    return row


async def _names(session: AsyncSession, dimension: Dimension, keys: list[Any]) -> dict[Any, str]:
    if dimension == "channel":
        return {k: str(k) for k in keys}
    if not keys:
        return {}
    if dimension == "team":
        found = await session.execute(select(Team.id, Team.name).where(Team.id.in_(keys)))
    else:
        found = await session.execute(
            select(Agent.id, func.coalesce(func.nullif(Agent.name, ""), Agent.email)).where(
                Agent.id.in_(keys)
            )
        )
    return {k: str(name) for k, name in found}


async def busiest_hours(session: AsyncSession, period: Period, scope: Scope) -> Table:
    """Customers' messages by local weekday and hour: one row per weekday, 24 hour columns."""
    sql = Sql(session.get_bind().dialect.name, period)
    weekday, hour = sql.weekday(Message.created_at), sql.hour(Message.created_at)
    query = (
        select(weekday, hour, func.count())
        .where(
            Message.created_at >= period.since,
            Message.created_at < period.until,
            Message.direction == "in",
            Message.author_kind == "customer",
        )
        .group_by(weekday, hour)
    )
    if narrowed := conversation_scope(scope):  # an admin's view reads the index alone
        query = query.join(Conversation, Conversation.id == Message.conversation_id).where(
            *narrowed
        )
    found = await session.execute(query)
    counts: dict[tuple[int, int], int] = {(int(d), int(h)): int(n) for d, h, n in found}
    order = [(period.week_start + i) % 7 for i in range(7)]
    hours = [f"h{h:02d}" for h in range(24)]
    rows: list[dict[str, Any]] = []
    totals = dict.fromkeys(hours, 0)
    for day in order:
        cells = {f"h{h:02d}": counts.get((day, h), 0) for h in range(24)}
        for name, count in cells.items():
            totals[name] += count
        rows.append(
            {"key": WEEKDAYS[day], "label": WEEKDAYS[day], **cells, "total": sum(cells.values())}
        )
    return Table(
        ("key", "label", *hours, "total"),
        rows,
        {"key": None, "label": "", **totals, "total": sum(totals.values())},
    )


async def csat_ratings(session: AsyncSession, period: Period, scope: Scope) -> Table:
    """How many answered surveys (sent in the period) gave each rating, 1 to 5."""
    found = await session.execute(
        select(CsatSurvey.rating, func.count())
        .where(
            CsatSurvey.sent_at >= period.since,
            CsatSurvey.sent_at < period.until,
            CsatSurvey.answered_at.is_not(None),
            CsatSurvey.rating.is_not(None),
            *columns_scope(scope, CsatSurvey.agent_id, CsatSurvey.team_id, CsatSurvey.channel),
        )
        .group_by(CsatSurvey.rating)
    )
    counts = {int(rating or 0): int(n) for rating, n in found}
    answered = sum(counts.values())
    rows = [
        {
            "key": rating,
            "label": str(rating),
            "count": counts.get(rating, 0),
            "share": counts.get(rating, 0) / answered if answered else None,
        }
        for rating in range(1, 6)
    ]
    return Table(
        ("key", "label", "count", "share"),
        rows,
        {"key": None, "label": "", "count": answered, "share": 1.0 if answered else None},
    )
