"""Reports over a period as JSON tables or CSV: agents see their own figures, team leads their
teams', admins everyone's. Every figure is defined in docs/reports.md."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.api.base import ApiError, ApiRoute, json_response, principal, query_id
from inbox.services import SERVICES
from routing.reports import (
    EARLIEST,
    REPORTS,
    WEEKDAYS,
    Forbidden,
    Group,
    Period,
    Scope,
    every_report,
    report,
    scope_for,
)

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DEFAULT_DAYS = 30
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
"""A CSV cell starting with one of these is a formula to a spreadsheet: such text gets a `'`."""


def _day(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not _DATE.fullmatch(raw):
        raise ApiError(400, f"{name}: a date like 2026-03-21")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{name}: no such date {raw!r}") from None


def _choice(request: web.Request, name: str, choices: tuple[str, ...], default: str) -> str:
    raw = request.query.get(name, default) or default
    if raw not in choices:
        raise ApiError(400, f"{name}: one of {', '.join(choices)}")
    return raw


def _channel(request: web.Request) -> str | None:
    raw = request.query.get("channel") or None
    if raw is not None and (len(raw) > 100 or not raw.isprintable()):
        raise ApiError(400, "channel: a channel name")
    return raw


def _period(request: web.Request, zone: ZoneInfo) -> Period:
    end = _day(request, "to") or datetime.now(zone).date()
    start = _day(request, "from")
    if start is None:
        start = max(end, EARLIEST + timedelta(days=DEFAULT_DAYS)) - timedelta(days=DEFAULT_DAYS - 1)
    group: Group = "week" if _choice(request, "group", ("day", "week"), "day") == "week" else "day"
    week_start = WEEKDAYS.index(_choice(request, "week_start", WEEKDAYS, "sat"))
    try:
        return Period(start, end, zone, group=group, week_start=week_start)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


async def get_report(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    wanted = _choice(request, "format", ("json", "csv"), "json")
    if name.endswith(".csv"):
        name, wanted = name.removesuffix(".csv"), "csv"
    if name not in REPORTS:
        raise ApiError(400, f"report: one of {', '.join(REPORTS)}")
    async with _asked(request) as (session, period, scope, head):
        table = await report(session, name, period, scope)
    if wanted == "csv":
        return _csv(name, period, table.columns, table.rows, table.totals)
    return json_response({"report": name, **head, **table.as_dict()})


async def get_reports(request: web.Request) -> web.StreamResponse:
    """Every report at once, as the reports page shows them: one request, one scope check,
    and the breakdowns computed together."""
    async with _asked(request) as (session, period, scope, head):
        tables = await every_report(session, period, scope)
    return json_response({**head, "reports": {k: t.as_dict() for k, t in tables.items()}})


@asynccontextmanager
async def _asked(
    request: web.Request,
) -> AsyncIterator[tuple[AsyncSession, Period, Scope, dict[str, Any]]]:
    """The period and scope a request asks for (400 for bad input, 403 for someone else's
    figures), a session to compute them in, and the fields every answer starts with."""
    services = request.app[SERVICES]
    zone_name = services.config.routing.business_hours.timezone
    period = _period(request, ZoneInfo(zone_name))
    team, agent, channel = query_id(request, "team"), query_id(request, "agent"), _channel(request)
    caller = principal(request)
    async with services.sessions() as session:
        try:
            scope = await scope_for(
                session,
                agent_id=caller.id,
                is_admin=caller.is_admin,
                team=team,
                agent=agent,
                channel=channel,
            )
        except Forbidden as exc:
            raise ApiError(403, str(exc)) from None
        head = {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "group": period.group,
            "week_start": WEEKDAYS[period.week_start],
            "timezone": zone_name,
            "scope": {
                "agents": sorted(scope.agent_ids) if scope.agent_ids is not None else None,
                "teams": sorted(scope.team_ids) if scope.team_ids is not None else None,
                "channel": channel,
            },
        }
        yield session, period, scope, head


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return "" if value is None else value


def _csv(
    name: str,
    period: Period,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    totals: dict[str, Any],
) -> web.Response:
    """UTF-8 with a byte order mark, which is how Excel knows the Persian in it is UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    writer.writerow([_cell({**totals, "key": "total"}.get(column)) for column in columns])
    filename = f"pishkhan-{name}-{period.start.isoformat()}-{period.end.isoformat()}.csv"
    return web.Response(
        body=b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


ROUTES = [
    ApiRoute(
        "GET",
        "/reports",
        get_reports,
        "agent",
        "Every report over a period at once (what the reports page shows), each as the JSON "
        "of /reports/{name}; agents see their own, leads their teams'",
        query=("from", "to", "group", "week_start", "channel", "team", "agent"),
    ),
    ApiRoute(
        "GET",
        "/reports/{name}",
        get_report,
        "agent",
        "A report over a period (summary, channels, teams, agents, hours, csat) as JSON, or as "
        "CSV with format=csv or a .csv ending; agents see their own, leads their teams'",
        query=("from", "to", "group", "week_start", "channel", "team", "agent", "format"),
    ),
]
