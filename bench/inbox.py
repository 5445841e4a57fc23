"""Inbox read latency on a large inbox: conversation list, open and search over the API, with
100k conversations and 1M messages (Persian sentences from the seed texts) on SQLite and on
PostgreSQL (a schema of its own, dropped afterwards)."""

from __future__ import annotations

import random
import re
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import Connection, insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.settings import Settings
from inbox.accounts import create_agent
from inbox.config import parse_config
from inbox.runtime import Runtime
from storage.config import StorageConfig
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.models import ContactPoint, Conversation, Customer, Message

SEEDS = Path("/work/shared/seeds")
PG_URL = "postgresql+asyncpg://root@127.0.0.1:5432/test"
PASSWORD = "bench-password-0123"
CHUNK = 20_000
WORDS = ["سفارش", "گارانتی", "کتاب", "پشتیبانی", "مشتری", "ارسال", "فاکتور", "refund", "order"]


def sentences() -> list[str]:
    found: list[str] = []
    for path in sorted(SEEDS.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            found += [s.strip() for s in re.split(r"[.!؟?]\s", line) if 20 <= len(s.strip()) < 400]
    return found or ["سفارش من هنوز نرسیده است", "Where is my order?"]


def seed(connection: Connection, settings: Settings) -> None:
    """Bulk Core inserts (executemany) in chunks; the search index follows by itself."""
    rng = random.Random(7)
    lines = sentences()
    now = datetime.now(UTC)
    conversations, messages = settings.inbox_conversations, settings.inbox_messages
    per = max(1, messages // conversations)
    for start in range(0, conversations, CHUNK):
        ids = range(start + 1, min(conversations, start + CHUNK) + 1)
        connection.execute(
            insert(Customer),
            [{"id": i, "name": f"مشتری {i}", "attributes": {}, "created_at": now} for i in ids],
        )
        connection.execute(
            insert(ContactPoint),
            [{"customer_id": i, "kind": "phone", "value": f"+98912{i:07d}"} for i in ids],
        )
        connection.execute(
            insert(Conversation),
            [
                {
                    "id": i,
                    "customer_id": i,
                    "channel": "webform",
                    "subject": rng.choice(lines)[:80],
                    "status": rng.choice(("open", "open", "pending", "resolved")),
                    "priority": "normal",
                    "metadata": {},
                    "created_at": now - timedelta(minutes=conversations - i),
                    "last_activity_at": now - timedelta(minutes=conversations - i),
                }
                for i in ids
            ],
        )
        rows = [
            {
                "conversation_id": i,
                "channel": "webform",
                "direction": "in" if n % 2 == 0 else "out",
                "author_kind": "customer" if n % 2 == 0 else "agent",
                "private": False,
                "subject": "",
                "text": rng.choice(lines) + " " + rng.choice(WORDS) + f" {rng.randrange(10000)}",
                "html": "",
                "attachments": {},
                "delivery_attempts": 0,
                "metadata": {},
                "created_at": now - timedelta(minutes=conversations - i, seconds=-n),
            }
            for i in ids
            for n in range(per)
        ]
        connection.execute(insert(Message), rows)


async def measure(settings: Settings, storage: StorageConfig) -> dict[str, Any]:
    engine = create_engine(storage)
    await upgrade(engine)
    started = time.perf_counter()
    async with engine.begin() as connection:
        await connection.run_sync(seed, settings)
        if engine.dialect.name == "postgresql":
            await connection.execute(text("ANALYZE"))
    seeded = time.perf_counter() - started
    async with session_factory(engine).begin() as session:
        await create_agent(
            session, email="bench@example.com", name="bench", password=PASSWORD, role="admin"
        )
    await engine.dispose()
    config = parse_config({"server": {"port": 0}, "channels": []})
    runtime = Runtime(config.model_copy(update={"storage": storage}), roles=("web",))
    await runtime.start()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            base = runtime.site_url + "/api/v1"
            async with http.post(
                base + "/auth/login", json={"email": "bench@example.com", "password": PASSWORD}
            ) as response:
                assert response.status == 200, await response.text()
            rng = random.Random(11)
            n = settings.inbox_samples
            top = settings.inbox_conversations
            figures = {
                "list": await _timed(http, [base + "/conversations"] * n),
                "open": await _timed(
                    http, [f"{base}/conversations/{rng.randrange(1, top + 1)}" for _ in range(n)]
                ),
                "search": await _timed(
                    http,
                    [
                        f"{base}/search?q={q}"
                        for q in [*WORDS, "گارانتي", "۰۹۱۲", "مشتری 12", "پشتیب", "ارسال سفارش"]
                        * (n // 14 + 1)
                    ][:n],
                ),
            }
    finally:
        await runtime.stop()
    return {"seed_seconds": seeded, **figures}


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
    results = {"sqlite": await measure(settings, _sqlite(workdir))}
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
