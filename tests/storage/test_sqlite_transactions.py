"""On SQLite, a reading session never waits behind the writer, and a writing one takes the write
lock when it begins (so read-then-write never fails with SQLITE_BUSY)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from sqlalchemy import func, select

from storage.config import StorageConfig
from storage.db import SessionFactory, create_engine, session_factory
from storage.migrate import upgrade
from storage.models import Label


@pytest_asyncio.fixture
async def database(tmp_path: Path) -> AsyncIterator[tuple[SessionFactory, Path]]:
    path = tmp_path / "p.db"
    engine = create_engine(StorageConfig(url=f"sqlite+aiosqlite:///{path}"))
    await upgrade(engine)
    yield session_factory(engine), path
    await engine.dispose()


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another writer (the router's thread, say) in the middle of a transaction."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO labels (name, color) VALUES ('در حال نوشتن', '')")
    return other


async def test_a_read_does_not_wait_for_the_writer(
    database: tuple[SessionFactory, Path],
) -> None:
    sessions, path = database
    other = hold_write_lock(path)
    try:
        async with asyncio.timeout(2):  # the busy timeout is 30 s: waiting would show
            async with sessions() as session:
                count = await session.scalar(select(func.count()).select_from(Label))
        assert count == 0  # the uncommitted label is not seen
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_a_write_waits_its_turn_and_then_succeeds(
    database: tuple[SessionFactory, Path],
) -> None:
    sessions, path = database
    other = hold_write_lock(path)

    async def write() -> None:
        async with sessions.begin() as session:
            # Read first, then write: deferred, this would fail with SQLITE_BUSY once the other
            # writer commits; begun IMMEDIATE it waits for the lock and then sees its commit.
            seen = await session.scalar(select(func.count()).select_from(Label))
            session.add(Label(name=f"پس از {seen}", color=""))

    writing = asyncio.ensure_future(write())
    await asyncio.sleep(0.3)
    assert not writing.done()  # it waits for the other writer
    other.execute("COMMIT")
    other.close()
    async with asyncio.timeout(5):
        await writing
    async with sessions() as session:
        names = set((await session.scalars(select(Label.name))).all())
    assert names == {"در حال نوشتن", "پس از 1"}
