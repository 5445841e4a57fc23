"""A large inbox for the read benchmark, written fast: rows planned in Python, then COPY on
PostgreSQL and plain executemany on SQLite, with the search index built once after the insert.

The database ends as the app would have left it: the same rows, columns and JSON shapes the
router writes (customers with a phone, their web-form identity, conversations with their
routing state and `last_inbound_message_id`, messages, the event log), and the same search index
(SQLite: the triggers are dropped for the insert, the FTS5 tables filled from the same folded
expression, the triggers put back; PostgreSQL: the GIN index rebuilt after COPY).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from storage.models import Base
from storage.search import sqlite_folded

SEEDS = Path("/work/shared/seeds")
WORDS = ["سفارش", "گارانتی", "کتاب", "پشتیبانی", "مشتری", "ارسال", "فاکتور", "refund", "order"]
"""One of these ends every seeded message, so each is a common word (about 1 message in 9)."""
CHUNK = 10_000
"""Conversations planned (and written) at a time."""
AGENTS = 20
TEAMS = 4
ORDER = (
    "teams",
    "agents",
    "team_members",
    "customers",
    "contact_points",
    "identities",
    "conversations",
    "messages",
    "events",
    "read_markers",
)
Rows = dict[str, list[dict[str, Any]]]


def sentences() -> list[str]:
    found: list[str] = []
    for path in sorted(SEEDS.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            found += [s.strip() for s in re.split(r"[.!؟?]\s", line) if 20 <= len(s.strip()) < 400]
    return found or ["سفارش من هنوز نرسیده است", "Where is my order?"]


@dataclass(frozen=True)
class Plan:
    conversations: int
    messages: int
    admin_id: int
    agent_id: int
    """The logged-in (non-admin) agent: in team 1, assigned its share, some of it read."""

    @property
    def pool(self) -> list[int]:
        """Who conversations are assigned to: the bench agent and the seeded agents."""
        return [self.agent_id, *range(first_agent_id(self), first_agent_id(self) + AGENTS)]


def first_agent_id(plan: Plan) -> int:
    return max(plan.admin_id, plan.agent_id) + 1


def plan_rows(plan: Plan) -> Iterator[Rows]:
    """Every row to write, in chunks whose tables are in foreign-key order."""
    rng = random.Random(7)
    lines = sentences()
    now = datetime.now(UTC)
    first = first_agent_id(plan)
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
                "last_assigned_at": None,
                "created_at": now,
                "locale": "fa",
            }
            for a in range(first, first + AGENTS)
        ],
        "team_members": [
            {"team_id": a % TEAMS + 1, "agent_id": a, "lead": False}
            for a in range(first, first + AGENTS)
        ]
        + [{"team_id": 1, "agent_id": plan.agent_id, "lead": False}],
    }
    per = max(1, plan.messages // plan.conversations)
    pool = plan.pool
    message_id = event_id = 0
    for start in range(1, plan.conversations + 1, CHUNK):
        rows: Rows = {name: [] for name in ORDER[3:]}
        for i in range(start, min(plan.conversations, start + CHUNK - 1) + 1):
            opened = now - timedelta(minutes=plan.conversations - i)
            phone = f"+98912{i:07d}"
            rows["customers"].append(
                {
                    "id": i,
                    "name": f"مشتری {i}",
                    "owner_id": None,
                    "attributes": {},
                    "created_at": opened,
                    "last_contact_at": opened,
                }
            )
            rows["contact_points"].append(
                {"id": i, "customer_id": i, "kind": "phone", "value": phone}
            )
            rows["identities"].append(
                {
                    "id": i,
                    "customer_id": i,
                    "channel": "webform",
                    "external_id": phone,
                    "name": f"مشتری {i}",
                    "created_at": opened,
                }
            )
            status = rng.choice(("open", "open", "pending", "resolved"))
            assignee = None if i % 7 == 0 else pool[i % len(pool)]
            team = None if i % 5 == 0 else i % TEAMS + 1
            flip = i % 3 == 0  # a third of the conversations end with the customer's message
            last_in: int | None = None
            last_in_at: datetime | None = None
            at = opened
            for n in range(per):
                message_id += 1
                inbound = (n + flip) % 2 == 0
                at = opened + timedelta(seconds=n)
                rows["messages"].append(
                    {
                        "id": message_id,
                        "conversation_id": i,
                        "channel": "webform",
                        "external_id": f"bench-{message_id}" if inbound else None,
                        "direction": "in" if inbound else "out",
                        "author_kind": "customer" if inbound else "agent",
                        "author_agent_id": None if inbound else (assignee or pool[0]),
                        "private": False,
                        "subject": "",
                        "text": f"{rng.choice(lines)} {rng.choice(WORDS)} {rng.randrange(10000)}",
                        "html": "",
                        "attachments": {"files": []} if inbound else {},
                        "delivery_status": None if inbound else "sent",
                        "delivery_error": None,
                        "delivery_attempts": 0 if inbound else 1,
                        "created_at": at,
                        "metadata": {"received_at": at.isoformat()} if inbound else {},
                    }
                )
                event_id += 1
                rows["events"].append(_event(event_id, "message.created", i, at, message_id))
                if inbound:
                    last_in, last_in_at = message_id, at
            waiting = last_in_at if last_in == message_id and status != "resolved" else None
            rows["conversations"].append(
                {
                    "id": i,
                    "customer_id": i,
                    "channel": "webform",
                    "thread_id": None,
                    "subject": rng.choice(lines)[:80],
                    "status": status,
                    "priority": "normal",
                    "assignee_id": assignee,
                    "team_id": team,
                    "snoozed_until": None,
                    "created_at": opened,
                    "last_activity_at": at,
                    "waiting_since": waiting,
                    "first_response_at": opened + timedelta(seconds=1) if per > 1 else None,
                    "resolved_at": at if status == "resolved" else None,
                    "metadata": {},
                    "last_inbound_message_id": last_in,
                    "sla_state": {},
                }
            )
            event_id += 1
            rows["events"].append(_event(event_id, "conversation.created", i, opened, None))
            if assignee is not None:
                event_id += 1
                rows["events"].append(
                    _event(event_id, "conversation.assigned", i, opened, None, assignee)
                )
            if assignee == plan.agent_id and i % 2 == 0:  # read half of its own, to the end
                rows["read_markers"].append(
                    {
                        "agent_id": plan.agent_id,
                        "conversation_id": i,
                        "last_read_message_id": message_id,
                    }
                )
        yield rows


def _event(
    event_id: int,
    kind: str,
    conversation_id: int,
    at: datetime,
    message_id: int | None,
    assignee: int | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"conversation": {"id": conversation_id}}
    if message_id is not None:
        data["message"] = {"id": message_id, "conversation_id": conversation_id}
    if kind == "conversation.assigned":
        data.update({"from": None, "to": assignee, "reason": "least_loaded"})
    return {
        "id": event_id,
        "type": kind,
        "conversation_id": conversation_id,
        "customer_id": conversation_id,
        "actor_agent_id": None,
        "data": data,
        "created_at": at,
    }


def _columns(table: str) -> list[str]:
    return [column.name for column in Base.metadata.tables[table].columns]


def _contact(row: dict[str, Any]) -> str:
    value: str = row["value"]
    if row["kind"] == "phone" and value.startswith("+98"):
        return f"{value} 0{value[3:]} {value[3:]}"
    return value


_SEARCHED = {
    "messages": lambda row: sqlite_folded(f"{row['subject']} {row['text']}"),
    "customers": lambda row: sqlite_folded(row["name"]),
    "contact_points": _contact,
}
"""SQLite: each indexed table's FTS5 body, as `storage.search.sqlite_document` computes it in
SQL (the fold is one character map; a test-sized seed compares the two)."""


# --- SQLite -------------------------------------------------------------------------------------


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):  # SQLAlchemy's SQLite DATETIME form, naive UTC
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def seed_sqlite(path: Path, plan: Plan) -> None:
    """Write the plan into a migrated SQLite file, then index it for search in bulk."""
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-200000")
        triggers = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'search_%'"
        ).fetchall()
        db.execute("BEGIN")
        for name, _ in triggers:
            db.execute(f"DROP TRIGGER {name}")
        for rows in plan_rows(plan):
            for table in ORDER:
                if not rows.get(table):
                    continue
                columns = _columns(table)
                db.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})",
                    [tuple(_sqlite_value(row.get(c)) for c in columns) for row in rows[table]],
                )
            for table, body in _SEARCHED.items():  # what the triggers would have indexed
                db.executemany(
                    f"INSERT INTO search_{table}(rowid, body) VALUES (?, ?)",
                    [(row["id"], body(row)) for row in rows.get(table, ())],
                )
        for _, sql in triggers:
            db.execute(sql)
        db.execute("COMMIT")
        db.execute("ANALYZE")
    finally:
        db.close()


# --- PostgreSQL ---------------------------------------------------------------------------------


def _pg_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict) else value


async def seed_postgres(dsn: str, schema: str, plan: Plan) -> None:
    """COPY the plan into a migrated schema; the search indexes are dropped first and built
    once at the end (what CREATE INDEX on a full table gives, as after migration 0002)."""
    import asyncpg  # type: ignore[import-untyped]

    db = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        searches = await db.fetch(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = $1 AND indexname LIKE 'ix\\_%\\_search'",
            schema,
        )
        async with db.transaction():
            # Rows are written in foreign-key order and are valid: skip the per-row FK checks.
            await db.execute("SET LOCAL session_replication_role = replica")
            for index in searches:
                await db.execute(f'DROP INDEX "{index["indexname"]}"')
            for rows in plan_rows(plan):
                for table in ORDER:
                    if not rows.get(table):
                        continue
                    columns = _columns(table)
                    await db.copy_records_to_table(
                        table,
                        schema_name=schema,
                        columns=columns,
                        records=[tuple(_pg_value(r.get(c)) for c in columns) for r in rows[table]],
                    )
            await db.execute("SET LOCAL maintenance_work_mem = '512MB'")
            for index in searches:
                await db.execute(index["indexdef"])
            for table in ORDER:
                if "id" in _columns(table):
                    await db.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
        # What autovacuum does soon after a bulk load: statistics, and the visibility map that
        # index-only scans (the unread counts) rely on.
        await db.execute("VACUUM ANALYZE")
    finally:
        await db.close()
