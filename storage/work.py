"""Running a unit of work: one synchronous function, one transaction, on either backend.

The router's and the agents' writes are short bursts of many small statements. Through an async
driver every statement is a round trip to the event loop (about 0.3 ms each with aiosqlite here);
run as plain synchronous SQLAlchemy they cost a few microseconds of driver time. So a unit of work
is written once as a synchronous function of a `Session`, and this runner executes it:
- on SQLite, in the one writer thread with the standard-library driver (SQLite has one writer
  anyway, so this also serializes writes instead of making them wait on locks);
- on PostgreSQL, through `AsyncSession.run_sync` on the asyncpg connection pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, sessionmaker

from storage.db import SessionFactory, install_sqlite_pragmas, sqlite_synchronous

T = TypeVar("T")
CHECKPOINT_SECONDS = 1.0


class UnitOfWork:
    def __init__(self, engine: AsyncEngine, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self._sync: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._sync_sessions: sessionmaker[Session] | None = None
        self._checkpointer: Checkpointer | None = None
        if engine.dialect.name == "sqlite":
            self._sync = _sync_sqlite_engine(engine)
            self._sync_sessions = sessionmaker(self._sync, expire_on_commit=False)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
            database = engine.url.database
            if database and database != ":memory:":
                self._checkpointer = Checkpointer(database)
        self.session_info: dict[str, Any] = {}
        """Values every unit of work's session carries in `Session.info` (the routing layer
        keeps its in-transaction reactions there: `routing.events.REACTIONS`)."""

    @classmethod
    def for_sessions(cls, sessions: SessionFactory) -> UnitOfWork:
        engine = sessions.kw["bind"]
        assert isinstance(engine, AsyncEngine)
        return cls(engine, sessions)

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn(session, *args, **kwargs)` in one transaction, committed if it returns."""
        if self._executor is not None and self._sync_sessions is not None:
            sync_sessions = self._sync_sessions

            def in_thread() -> T:
                with sync_sessions.begin() as session:
                    session.info.update(self.session_info)
                    return fn(session, *args, **kwargs)

            return await asyncio.get_running_loop().run_in_executor(self._executor, in_thread)
        async with self._sessions.begin() as session:
            session.info.update(self.session_info)
            return await session.run_sync(fn, *args, **kwargs)

    async def close(self) -> None:
        """Safe to call twice."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._sync is not None:
            self._sync.dispose()
            self._sync = None


def _sync_sqlite_engine(engine: AsyncEngine) -> Engine:
    url = engine.url.set(drivername="sqlite+pysqlite")
    sync = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    install_sqlite_pragmas(sync, sqlite_synchronous(engine.sync_engine))

    @event.listens_for(sync, "connect")
    def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")  # the Checkpointer does it

    return sync


class Checkpointer:
    """Copies the write-ahead log into the database file from a thread and connection of its
    own, every `interval` seconds. The writer's commits then never run a checkpoint themselves
    (with `synchronous=full`, one is an fsync of the database file: a commit that triggers it
    waits tens to hundreds of milliseconds, and every message behind it waits too). PASSIVE:
    it never blocks the writer or readers; it copies what it can."""

    def __init__(self, path: str, *, interval: float = CHECKPOINT_SECONDS) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        try:
            while not self._stop.wait(self._interval):
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
