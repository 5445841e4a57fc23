"""Shared fixtures: databases on both backends, Redis namespaces, and a network guard."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage.config import StorageConfig
from storage.db import SessionFactory, create_engine, session_factory
from storage.migrate import upgrade
from tests.fixtures.services import PG_URL, REDIS_URL, require, unique

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(address: Any) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise OSError(f"test tried to reach {host}: tests stay on loopback")
        except ValueError:
            if host not in ("localhost",):
                raise OSError(f"test tried to reach {host}: tests stay on loopback") from None


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test that reaches for a non-loopback address."""

    def connect(self: socket.socket, address: Any) -> None:
        _loopback_only(address)
        return _real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _loopback_only(address)
        return _real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield


async def _pg_schema() -> tuple[str, AsyncEngine]:
    require("PostgreSQL", "127.0.0.1", 5432)
    schema = unique("t")
    admin = create_async_engine(PG_URL)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    return schema, admin


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def storage_config(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StorageConfig]:
    """A fresh, migrated database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        config = StorageConfig(
            url=f"sqlite+aiosqlite:///{tmp_path / 'pishkhan.db'}", sqlite_synchronous="normal"
        )
        yield config
        return
    schema, admin = await _pg_schema()
    try:
        yield StorageConfig(url=PG_URL, schema=schema)
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest_asyncio.fixture
async def engine(storage_config: StorageConfig) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(storage_config)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> SessionFactory:
    return session_factory(engine)


@pytest_asyncio.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the real Redis; its keys are deleted afterwards."""
    require("Redis", "127.0.0.1", 6379)
    from redis.asyncio import Redis

    prefix = unique("pishkhan-test")
    yield prefix
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def stack(storage_config: StorageConfig) -> AsyncIterator[Any]:
    """Pishkhan running on both backends, with one web form channel named `contact`."""
    from tests.fixtures.stack import running_stack

    async with running_stack(storage_config) as running:
        yield running
