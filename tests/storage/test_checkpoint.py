"""The SQLite writer never checkpoints on its own commits; a thread of its own copies the
write-ahead log into the database file in the background."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from storage.config import StorageConfig
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.work import Checkpointer, UnitOfWork


def _autocheckpoint(session: Session) -> int:
    return int(session.execute(text("PRAGMA wal_autocheckpoint")).scalar_one())


async def test_the_writer_leaves_checkpoints_to_the_checkpointer(tmp_path: Path) -> None:
    engine = create_engine(StorageConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"))
    await upgrade(engine)
    work = UnitOfWork.for_sessions(session_factory(engine))
    try:
        assert await work.run(_autocheckpoint) == 0
    finally:
        await work.close()
        await engine.dispose()


def _write(path: Path) -> None:
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("CREATE TABLE notes (text TEXT)")
        db.executemany("INSERT INTO notes VALUES (?)", [("یادداشت " * 50,)] * 2000)


async def test_the_checkpointer_copies_the_log_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    await asyncio.to_thread(_write, path)
    before = await asyncio.to_thread(lambda: path.stat().st_size)
    checkpointer = Checkpointer(str(path), interval=0.05)
    try:
        await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(checkpointer.close)
    after = await asyncio.to_thread(lambda: path.stat().st_size)
    assert after > before + 500_000  # the notes moved from the log into the file
