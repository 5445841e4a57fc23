"""One engine per process, and the session factory every unit of work gets its session from."""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.asyncio.session import _AsyncSessionContextManager
from sqlalchemy.pool import ConnectionPoolEntry

from storage.config import StorageConfig


class SessionFactory(async_sessionmaker[AsyncSession]):
    """`factory()` gives a session for reading; `factory.begin()` one that writes. On SQLite the
    difference matters: a writing transaction takes the write lock when it begins, a reading
    one takes none and never waits behind the writer (WAL)."""

    _writer: async_sessionmaker[AsyncSession] | None = None

    def begin(self) -> _AsyncSessionContextManager[AsyncSession]:
        bind = self.kw["bind"]
        if not (isinstance(bind, AsyncEngine) and bind.dialect.name == "sqlite"):
            return super().begin()
        if self._writer is None:
            writer = bind.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            self._writer = async_sessionmaker(**{**self.kw, "bind": writer})
        return self._writer.begin()


_SQLITE_SYNCHRONOUS: WeakKeyDictionary[Engine, str] = WeakKeyDictionary()


BEGIN_OPTION = "sqlite_begin"
"""The execution option naming how a SQLite transaction begins: IMMEDIATE or DEFERRED."""


def install_sqlite_pragmas(engine: Engine, synchronous: str, *, begin: str = "IMMEDIATE") -> None:
    """WAL, foreign keys, a busy timeout, and transactions opened as `begin` unless the
    connection's `sqlite_begin` option says otherwise. A transaction that writes must begin
    IMMEDIATE: a deferred read-then-write one fails with SQLITE_BUSY instead of waiting its
    turn. One that only reads begins DEFERRED and, in WAL mode, never waits for a writer."""
    _SQLITE_SYNCHRONOUS[engine] = synchronous

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(BEGIN_OPTION, begin)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN DEFERRED")


def sqlite_synchronous(engine: Engine) -> str:
    return _SQLITE_SYNCHRONOUS.get(engine, "FULL")


def create_engine(config: StorageConfig) -> AsyncEngine:
    """Build the engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    if config.url.startswith("sqlite"):
        engine = create_async_engine(config.url, echo=config.echo, connect_args={"timeout": 30})
        # Reads begin DEFERRED; `SessionFactory.begin()` and migrations write, and say so.
        install_sqlite_pragmas(
            engine.sync_engine, config.sqlite_synchronous.upper(), begin="DEFERRED"
        )
        return engine
    connect_args: dict[str, Any] = {}
    if config.schema_:
        connect_args["server_settings"] = {"search_path": config.schema_}
    return create_async_engine(
        config.url,
        echo=config.echo,
        pool_size=config.pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return SessionFactory(engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
