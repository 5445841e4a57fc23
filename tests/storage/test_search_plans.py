"""The inbox's hot reads are planned on their indexes, on both backends: the queries the app
sends (captured as it runs them) are explained. On PostgreSQL the tables here are tiny, so
sequential scans are turned off: what is checked is that the query *can* use the index (its
expression or column matches), which is what silently breaks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from inbox.accounts import Principal
from inbox.api.conversations import _counts
from storage.db import SessionFactory
from storage.search import search
from tests.storage.test_search import add_conversation

Captured = list[tuple[str, Any]]


@contextmanager
def captured(engine: AsyncEngine) -> Iterator[Captured]:
    statements: Captured = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def plans(
    engine: AsyncEngine,
    sessions: SessionFactory,
    run: Callable[[AsyncSession], Awaitable[Any]],
    wanted: str,
) -> list[str]:
    """The plan of each statement `run` sends that mentions `wanted`, one text per statement."""
    async with sessions() as session:
        with captured(engine) as statements:
            await run(session)
    chosen = [(s, p) for s, p in statements if wanted in s and not s.startswith("SAVEPOINT")]
    assert chosen, f"no statement mentions {wanted}"
    sqlite = engine.dialect.name == "sqlite"
    found: list[str] = []
    async with engine.connect() as connection:
        if not sqlite:
            await connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in chosen:
            explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            rows = (await connection.exec_driver_sql(explain + statement, parameters)).all()
            found.append("\n".join(str(row[-1]) for row in rows))
    return found


def principal(agent_id: int, *, role: str = "agent", teams: frozenset[int] = frozenset()) -> Any:
    return Principal(
        id=agent_id, email="a@example.com", name="a", role=role, team_ids=teams, csrf_token=None
    )


@pytest.mark.parametrize("role", ["admin", "agent"])
async def test_unread_counts_read_one_index_not_the_messages(
    engine: AsyncEngine, sessions: SessionFactory, role: str
) -> None:
    await add_conversation(sessions, "سلام", team="پشتیبانی")
    who = principal(1, role=role, teams=frozenset({1}))
    [open_, read] = await plans(engine, sessions, lambda s: _counts(s, who), "count(*) FILTER")
    assert "messages" not in open_ and "messages" not in read
    if engine.dialect.name == "sqlite":
        assert "COVERING INDEX ix_conversations_status_inbound" in open_, open_
        assert "read_markers" in read and "SCAN conversations" not in read, read
    else:  # which index of several a one-row table gets is the planner's whim; none is a scan
        assert "Seq Scan" not in open_ and "Seq Scan" not in read, (open_, read)


async def test_search_matches_through_the_full_text_index(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    await add_conversation(
        sessions, "گارانتی کتاب تمام شده", name="مریم", contacts=(("phone", "+989121234567"),)
    )

    async def find(session: AsyncSession) -> Any:
        results = await search(session, "گارانتي")
        assert len(results.conversations) == 1
        return results

    sqlite = engine.dialect.name == "sqlite"
    found = await plans(engine, sessions, find, "MATCH" if sqlite else "search_vector @@")
    # messages, customer names, contact points (on PostgreSQL each of the last two first asks
    # its GIN index whether the word is rare)
    assert len(found) == (3 if sqlite else 5)
    for plan in found:
        assert ("VIRTUAL TABLE INDEX" if sqlite else "Index") in plan, plan
        assert "Seq Scan" not in plan, plan
    if not sqlite:  # from the GIN indexes on the stored vectors, or newest first by key
        assert "ix_messages_search" in found[0] or "pk_messages" in found[0], found[0]
        assert "ix_customers_search" in found[1], found[1]
        assert "ix_contact_points_search" in found[2], found[2]
