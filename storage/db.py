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
from sqlalchemy.pool import ConnectionPoolEntry

from storage.config import StorageConfig

SessionFactory = async_sessionmaker[AsyncSession]
_SQLITE_SYNCHRONOUS: WeakKeyDictionary[Engine, str] = WeakKeyDictionary()


def install_sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    """WAL, foreign keys, a busy timeout, and every transaction opened as IMMEDIATE: a deferred
    read-then-write transaction fails with SQLITE_BUSY instead of waiting its turn."""
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
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def sqlite_synchronous(engine: Engine) -> str:
    return _SQLITE_SYNCHRONOUS.get(engine, "FULL")


def create_engine(config: StorageConfig) -> AsyncEngine:
    """Build the engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    if config.url.startswith("sqlite"):
        engine = create_async_engine(config.url, echo=config.echo, connect_args={"timeout": 30})
        install_sqlite_pragmas(engine.sync_engine, config.sqlite_synchronous.upper())
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
    return async_sessionmaker(engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
