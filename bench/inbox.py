"""Inbox read latency on a large inbox: conversation list, open and search over the API, with
100k conversations and 1M messages (Persian sentences from the seed texts) on SQLite and on
PostgreSQL (a schema of its own, dropped afterwards)."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.seed import WORDS, Plan, seed_postgres, seed_sqlite
from bench.settings import Settings
from inbox.accounts import create_agent
from inbox.config import parse_config
from inbox.runtime import Runtime
from storage.config import StorageConfig
from storage.db import create_engine, session_factory
from storage.migrate import upgrade

PG_URL = "postgresql+asyncpg://root@127.0.0.1:5432/test"
PG_DSN = "postgresql://root@127.0.0.1:5432/test"
PASSWORD = "bench-password-0123"
QUERIES = [*WORDS, "گارانتي", "۰۹۱۲", "مشتری 12", "پشتیب", "ارسال سفارش"]
"""Common words (each in about 1 message in 9), an Arabic-letter spelling, Persian digits that
match every phone by prefix, a customer's name, a prefix and two words together."""


async def measure(settings: Settings, storage: StorageConfig) -> dict[str, Any]:
    engine = create_engine(storage)
    await upgrade(engine)
    async with session_factory(engine).begin() as session:
        admin = await create_agent(
            session, email="bench@example.com", name="bench", password=PASSWORD, role="admin"
        )
        agent = await create_agent(
            session, email="agent@example.com", name="agent", password=PASSWORD
        )
    await engine.dispose()
    plan = Plan(settings.inbox_conversations, settings.inbox_messages, admin.id, agent.id)
    started = time.perf_counter()
    if storage.schema_:
        await seed_postgres(PG_DSN, storage.schema_, plan)
    else:
        path = Path(storage.url.removeprefix("sqlite+aiosqlite:///"))
        await asyncio.to_thread(seed_sqlite, path, plan)
    seeded = time.perf_counter() - started
    config = parse_config({"server": {"port": 0}, "channels": []})
    runtime = Runtime(config.model_copy(update={"storage": storage}), roles=("web",))
    await runtime.start()
    figures: dict[str, Any] = {"seed_seconds": seeded}
    try:
        for role, email in (("admin", "bench@example.com"), ("agent", "agent@example.com")):
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                figures[role] = await _reads(http, runtime.site_url + "/api/v1", email, settings)
    finally:
        await runtime.stop()
    return figures


async def _reads(
    http: aiohttp.ClientSession, base: str, email: str, settings: Settings
) -> dict[str, Any]:
    async with http.post(
        base + "/auth/login", json={"email": email, "password": PASSWORD}
    ) as response:
        assert response.status == 200, await response.text()
    rng = random.Random(11)
    n = settings.inbox_samples
    top = settings.inbox_conversations
    # An agent opens what it can see: its own, its team's (1: ids ≡ 0 mod 4) and teamless ones.
    seen = [i for i in range(1, top + 1) if i % 5 == 0 or i % 4 == 0]
    opened = [rng.randrange(1, top + 1) for _ in range(n)]
    if "agent@" in email:
        opened = [rng.choice(seen) for _ in range(n)]
    return {
        "list": await _timed(http, [base + "/conversations"] * n),
        "open": await _timed(http, [f"{base}/conversations/{i}" for i in opened]),
        "search": await _timed(
            http, [f"{base}/search?q={q}" for q in QUERIES * (n // len(QUERIES) + 1)][:n]
        ),
    }


async def _timed(http: aiohttp.ClientSession, urls: list[str]) -> dict[str, float]:
    for url in urls[:5]:  # warm caches
        async with http.get(url) as response:
            await response.read()
    times = []
    for url in urls:
        started = time.perf_counter()
        async with http.get(url) as response:
            await response.read()
            assert response.status == 200, (url, response.status)
        times.append(time.perf_counter() - started)
    cuts = statistics.quantiles(times, n=20)
    return {"p50": statistics.median(times), "p95": cuts[18], "samples": len(times)}


async def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    return await on_both_engines(measure, settings, _sqlite(workdir))


Measure = Callable[[Settings, StorageConfig], Awaitable[dict[str, Any]]]


async def on_both_engines(
    measure: Measure, settings: Settings, sqlite: StorageConfig
) -> dict[str, Any]:
    """`measure` on the SQLite file, then on a PostgreSQL schema of its own (dropped after)."""
    results = {"sqlite": await measure(settings, sqlite)}
    schema = "bench_" + uuid.uuid4().hex[:8]
    admin = create_async_engine(PG_URL)
    try:
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        results["postgresql"] = await measure(settings, StorageConfig(url=PG_URL, schema=schema))
    except OSError as exc:  # no PostgreSQL here: say so in the table
        results["postgresql"] = {"error": str(exc)}
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()
    return results


def _sqlite(workdir: Path) -> StorageConfig:
    return StorageConfig(
        url=f"sqlite+aiosqlite:///{workdir / 'inbox.db'}", sqlite_synchronous="normal"
    )
