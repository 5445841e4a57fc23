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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, sessionmaker

from storage.db import SessionFactory, install_sqlite_pragmas, sqlite_synchronous

T = TypeVar("T")


class UnitOfWork:
    def __init__(self, engine: AsyncEngine, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self._sync: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._sync_sessions: sessionmaker[Session] | None = None
        if engine.dialect.name == "sqlite":
            self._sync = _sync_sqlite_engine(engine)
            self._sync_sessions = sessionmaker(self._sync, expire_on_commit=False)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

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
                    return fn(session, *args, **kwargs)

            return await asyncio.get_running_loop().run_in_executor(self._executor, in_thread)
        async with self._sessions.begin() as session:
            return await session.run_sync(fn, *args, **kwargs)

    async def close(self) -> None:
        """Safe to call twice."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._sync is not None:
            self._sync.dispose()
            self._sync = None


def _sync_sqlite_engine(engine: AsyncEngine) -> Engine:
    url = engine.url.set(drivername="sqlite+pysqlite")
    sync = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    install_sqlite_pragmas(sync, sqlite_synchronous(engine.sync_engine))
    return sync
