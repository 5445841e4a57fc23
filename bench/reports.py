"""Report query latency over a year of activity: 100k conversations (the inbox bench's size
setting), about ten messages each, their events, SLA breaches and CSAT surveys, on SQLite and on
PostgreSQL (a schema of its own, dropped afterwards). Each report is timed for the last 30 days
and the last 365, as an admin sees it (everything) and as a team lead does (one team of four);
the ceiling is a bare count of the period's conversations on the same database. `page` is
every report at once, as the reports page asks for them (`GET /api/v1/reports`)."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bench.inbox import PG_DSN, on_both_engines
from bench.settings import Settings
from routing.reports import REPORTS, Period, Scope, every_report, report
from storage.config import StorageConfig
from storage.db import SessionFactory, create_engine, session_factory
from storage.migrate import upgrade
from storage.models import Base, Conversation

AIM = 0.300
ZONE = ZoneInfo("Asia/Tehran")
TEAMS = 4
AGENTS = 20
CHUNK = 5000
CHANNELS = (("telegram", 35), ("webform", 20), ("email", 20), ("webchat", 15), ("whatsapp", 10))
BOT_CHANNELS = {"telegram", "webchat", "whatsapp"}
ORDER = (
    "teams",
    "agents",
    "team_members",
    "customers",
    "conversations",
    "messages",
    "events",
    "sla_breaches",
    "csat_surveys",
)
TEXTS = ("سلام، سفارشم کی می‌رسد؟", "فاکتور را برایم بفرستید", "ممنون از پاسخ شما", "Thanks!")
Rows = dict[str, list[dict[str, Any]]]


def plan_rows(conversations: int, messages: int, now: datetime) -> Iterator[Rows]:
    """A year of activity ending `now`, in chunks whose tables are in foreign-key order."""
    rng = random.Random(9)
    yield {
        "teams": [{"id": t, "name": f"تیم {t}"} for t in range(1, TEAMS + 1)],
        "agents": [
            {
                "id": a,
                "email": f"agent{a}@example.com",
                "name": f"کارشناس {a}",
                "password_hash": "!",
                "role": "agent",
                "presence": "offline",
                "capacity": 10,
                "active": True,
                "created_at": now,
                "locale": "fa",
            }
            for a in range(1, AGENTS + 1)
        ],
        "team_members": [
            {"team_id": a % TEAMS + 1, "agent_id": a, "lead": a <= TEAMS}
            for a in range(1, AGENTS + 1)
        ],
    }
    names = [name for name, weight in CHANNELS for _ in range(weight)]
    per = max(2, messages // conversations)
    ids = {"messages": 0, "events": 0, "sla_breaches": 0, "csat_surveys": 0}

    def next_id(table: str) -> int:
        ids[table] += 1
        return ids[table]

    year = 365 * 86400
    for start in range(1, conversations + 1, CHUNK):
        rows: Rows = {name: [] for name in ORDER[3:]}
        for i in range(start, min(conversations, start + CHUNK - 1) + 1):
            created = now - timedelta(seconds=year * (conversations - i) / conversations)
            channel = rng.choice(names)
            agent = rng.randrange(1, AGENTS + 1) if rng.random() < 0.9 else None
            team = (agent % TEAMS + 1) if agent else rng.choice([1, 2, 3, 4, None])
            bot = channel in BOT_CHANNELS and rng.random() < 0.5
            handed = bot and rng.random() < 0.6
            first = created + timedelta(seconds=rng.lognormvariate(7, 1.2))
            resolutions = []
            if rng.random() < 0.85 and first < now:
                resolutions.append(first + timedelta(seconds=rng.lognormvariate(9, 1.3)))
                if rng.random() < 0.1:
                    resolutions.append(resolutions[0] + timedelta(hours=rng.randrange(1, 72)))
            resolutions = [at for at in resolutions if at < now]
            rows["customers"].append(
                {"id": i, "name": f"مشتری {i}", "attributes": {}, "created_at": created}
            )

            def event(
                kind: str,
                at: datetime,
                data: dict[str, Any],
                i: int = i,
                events: list[Any] = rows["events"],
            ) -> None:
                events.append(
                    {
                        "id": next_id("events"),
                        "type": kind,
                        "conversation_id": i,
                        "customer_id": i,
                        "data": {"conversation": {"id": i}, **data},
                        "created_at": at,
                    }
                )

            event("conversation.created", created, {})
            at = created
            for n in range(per):
                inbound = n % 2 == 0
                author = "customer" if inbound else ("bot" if bot and n == 1 else "agent")
                at = first if n == 1 else at + timedelta(seconds=rng.randrange(30, 3600))
                message_id = next_id("messages")
                rows["messages"].append(
                    {
                        "id": message_id,
                        "conversation_id": i,
                        "channel": channel,
                        "external_id": f"r{message_id}" if inbound else None,
                        "direction": "in" if inbound else "out",
                        "author_kind": author,
                        "author_agent_id": None if inbound or author == "bot" else agent,
                        "private": False,
                        "subject": "",
                        "text": rng.choice(TEXTS),
                        "html": "",
                        "attachments": {},
                        "delivery_attempts": 0,
                        "created_at": at,
                        "metadata": {},
                    }
                )
                event("message.created", at, {"message": {"id": message_id}})
            if handed:
                event(
                    "conversation.handed_over", created + timedelta(seconds=3), {"reason": "asked"}
                )
            for resolved in resolutions:
                event("conversation.status_changed", resolved, {"from": "open", "to": "resolved"})
            rows["conversations"].append(
                {
                    "id": i,
                    "customer_id": i,
                    "channel": channel,
                    "subject": "",
                    "status": "resolved"
                    if resolutions
                    else ("bot" if bot and not handed else "open"),
                    "priority": "normal",
                    "assignee_id": agent,
                    "team_id": team,
                    "created_at": created,
                    "last_activity_at": at,
                    "first_response_at": first if first < now else None,
                    "resolved_at": resolutions[-1] if resolutions else None,
                    "metadata": {"bot": {"misses": 0, "language": "fa"}} if bot else {},
                    "sla_state": {},
                }
            )
            if rng.random() < 0.08:
                due = created + timedelta(hours=rng.randrange(1, 48))
                rows["sla_breaches"].append(
                    {
                        "id": next_id("sla_breaches"),
                        "conversation_id": i,
                        "metric": rng.choice(("first_response", "next_response", "resolution")),
                        "policy": "standard",
                        "due_at": due,
                        "breached_at": due,
                        "channel": channel,
                        "team_id": team,
                        "assignee_id": agent,
                    }
                )
            if resolutions and rng.random() < 0.7:
                answered = rng.random() < 0.4
                survey_id = next_id("csat_surveys")
                rows["csat_surveys"].append(
                    {
                        "id": survey_id,
                        "conversation_id": i,
                        "customer_id": i,
                        "channel": channel,
                        "agent_id": agent,
                        "team_id": team,
                        "status": "answered" if answered else "sent",
                        "sent_at": resolutions[0],
                        "expires_at": resolutions[0] + timedelta(days=7),
                        "rating": rng.choice((1, 2, 3, 4, 4, 5, 5, 5)) if answered else None,
                        "comment": "",
                        "answered_at": resolutions[0] + timedelta(hours=1) if answered else None,
                        "nonce": f"bench-{survey_id}",
                    }
                )
        yield rows


def _columns(table: str) -> list[str]:
    return [column.name for column in Base.metadata.tables[table].columns]


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):  # SQLAlchemy's SQLite DATETIME form, naive UTC
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def seed_sqlite(path: Path, conversations: int, messages: int, now: datetime) -> None:
    """Write the year into a migrated SQLite file. The search triggers are dropped for the
    insert and put back: reports never search, so the search index is left empty."""
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        triggers = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'search_%'"
        ).fetchall()
        db.execute("BEGIN")
        for name, _ in triggers:
            db.execute(f"DROP TRIGGER {name}")
        for rows in plan_rows(conversations, messages, now):
            for table in ORDER:
                if rows.get(table):
                    columns = _columns(table)
                    db.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) "
                        f"VALUES ({', '.join('?' * len(columns))})",
                        [tuple(_sqlite_value(r.get(c)) for c in columns) for r in rows[table]],
                    )
        for _, sql in triggers:
            db.execute(sql)
        db.execute("COMMIT")
        db.execute("ANALYZE")
    finally:
        db.close()


async def seed_postgres(schema: str, conversations: int, messages: int, now: datetime) -> None:
    """COPY the year into a migrated schema, then VACUUM ANALYZE as autovacuum soon would."""
    import asyncpg  # type: ignore[import-untyped]

    db = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    try:
        async with db.transaction():
            await db.execute("SET LOCAL session_replication_role = replica")
            for rows in plan_rows(conversations, messages, now):
                for table in ORDER:
                    if rows.get(table):
                        columns = _columns(table)
                        await db.copy_records_to_table(
                            table,
                            schema_name=schema,
                            columns=columns,
                            records=[
                                tuple(json.dumps(v) if isinstance(v, dict) else v for v in values)
                                for values in ([r.get(c) for c in columns] for r in rows[table])
                            ],
                        )
        await db.execute("VACUUM ANALYZE")
    finally:
        await db.close()


async def _timed(
    sessions: SessionFactory, samples: int, name: str, period: Period, scope: Scope
) -> dict[str, float]:
    async def once() -> float:
        started = time.perf_counter()
        async with sessions() as session:
            if name == "ceiling":
                await session.scalar(
                    select(func.count()).where(
                        Conversation.created_at >= period.since,
                        Conversation.created_at < period.until,
                    )
                )
            elif name == "page":  # every report at once, as the reports page asks
                await every_report(session, period, scope)
            else:
                await report(session, name, period, scope)
        return time.perf_counter() - started

    await once()  # warm caches
    times = [await once() for _ in range(samples)]
    cuts = statistics.quantiles(times, n=20) if len(times) > 1 else times * 19
    return {"p50": statistics.median(times), "p95": cuts[18], "samples": len(times)}


async def measure(settings: Settings, storage: StorageConfig) -> dict[str, Any]:
    engine = create_engine(storage)
    await upgrade(engine)
    await engine.dispose()
    now = datetime.now(UTC)
    n, m = settings.inbox_conversations, settings.inbox_messages
    started = time.perf_counter()
    if storage.schema_:
        await seed_postgres(storage.schema_, n, m, now)
    else:
        path = Path(storage.url.removeprefix("sqlite+aiosqlite:///"))
        await asyncio.to_thread(seed_sqlite, path, n, m, now)
    figures: dict[str, Any] = {"seed_seconds": time.perf_counter() - started, "reports": {}}
    engine = create_engine(storage)
    sessions = session_factory(engine)
    samples = 5 if settings.quick else 10
    today = now.astimezone(ZONE).date()
    try:
        for days in (30, 365):
            period = Period(today - timedelta(days=days - 1), today, ZONE)
            weeks = Period(period.start, today, ZONE, group="week")
            for who, scope in (("admin", Scope()), ("lead", Scope(team_ids=frozenset({1})))):
                for name in ("ceiling", *REPORTS, "page"):
                    chosen = weeks if days == 365 and name in ("summary", "page") else period
                    key = f"{days}d {who} {name}"
                    figures["reports"][key] = await _timed(sessions, samples, name, chosen, scope)
    finally:
        await engine.dispose()
    return figures


async def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    results = await on_both_engines(measure, settings, _sqlite(workdir))
    results["conversations"] = settings.inbox_conversations
    results["messages"] = settings.inbox_messages
    return results


def _sqlite(workdir: Path) -> StorageConfig:
    return StorageConfig(
        url=f"sqlite+aiosqlite:///{workdir / 'reports.db'}", sqlite_synchronous="normal"
    )


def table(result: dict[str, Any]) -> str:
    """p50 and p95 per report, period and scope, beside the bare count's p95 (the ceiling)."""
    lines = [
        f"reports — a year of activity: {result['conversations']} conversations, "
        f"{result['messages']} messages; 30-day periods by day, 365-day by week for the "
        "summary and the page (every report at once); ceiling: a bare count of the period's "
        "conversations",
    ]
    for backend in ("sqlite", "postgresql"):
        figures = result[backend]
        if "error" in figures:
            lines.append(f"  {backend}: skipped ({figures['error']})")
            continue
        lines.append(f"  {backend} (seeded in {figures['seed_seconds']:.0f} s):")
        reports = figures["reports"]
        for key, f in reports.items():
            if key.endswith("ceiling"):
                continue
            ceiling = reports[key.rsplit(" ", 1)[0] + " ceiling"]["p95"]
            mark = "✓" if f["p95"] < AIM else "✗"
            lines.append(
                f"    {key:<22} p50 {f['p50'] * 1000:7.1f} ms  p95 {f['p95'] * 1000:7.1f} ms  "
                f"{f['p95'] / ceiling:6.1f}× ceiling  aim p95 < {AIM * 1000:.0f} ms {mark}"
            )
    return "\n".join(lines)


def main() -> None:
    """`python -m bench.reports [--quick]`: this benchmark alone."""
    import sys
    import tempfile

    from bench.settings import load

    settings = load(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="pishkhan-reports-") as tmp:
        result = asyncio.run(run(settings, Path(tmp)))
    print(table(result))


if __name__ == "__main__":
    main()
