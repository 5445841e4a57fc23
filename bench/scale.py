"""Scaling out: ingest on PostgreSQL + Redis with two web processes and 1, 2 and 4 router
workers (separate OS processes), against the bare aiohttp handler with the same client in the
same run. Messages are posted to both web processes; latency is POST → the agent's WebSocket,
which is connected to the first web process only (so half the events cross through Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import procs
from bench.database import ROUTED
from bench.ingest import Latency, Throughput
from bench.load import Observer, forms, paced, saturate
from bench.settings import Settings

PG_URL = os.environ.get("PISHKHAN_BENCH_PG", "postgresql+asyncpg://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PISHKHAN_BENCH_REDIS", "redis://127.0.0.1:6379/0")
WORKERS = (1, 2, 4)
WEB_PROCESSES = 2
LOST_AFTER = 30.0


async def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    ceiling = await _bare(settings, workdir)
    runs = []
    for workers in WORKERS:
        (workdir / f"workers-{workers}").mkdir()
        runs.append(await _cluster(settings, workdir / f"workers-{workers}", workers))
    return {"bare": ceiling.as_dict(), "runs": runs, "load_average": os.getloadavg()[0]}


async def _bare(settings: Settings, workdir: Path) -> Throughput:
    server = await procs.start_bare(workdir)
    try:
        async with aiohttp.ClientSession(connector=_connector(settings.concurrency)) as http:
            await saturate(http, server.url, forms("warm", settings.warmup), settings.concurrency)
            started = time.perf_counter()
            await saturate(
                http, server.url, forms("ingest", settings.requests), settings.concurrency
            )
            elapsed = time.perf_counter() - started
    finally:
        await server.stop()
    return Throughput(settings.requests, elapsed, elapsed)


def _connector(limit: int) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(limit=limit, force_close=False)


async def _cluster(settings: Settings, workdir: Path, workers: int) -> dict[str, Any]:
    database = f"pk_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{database}"'))
    url = PG_URL.rsplit("/", 1)[0] + "/" + database
    prefix = f"pishkhan-bench-{uuid.uuid4().hex[:8]}"
    config = workdir / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "server": {"host": "127.0.0.1", "port": 0},
                "storage": {"url": url},
                "queue": {"url": REDIS_URL, "prefix": prefix},
                "channels": [{"type": "webform", "name": "contact"}],
            }
        )
    )
    servers: list[procs.Server] = []
    engine = create_async_engine(url)
    try:
        await procs.cli(config, "migrate")
        token = await procs.add_agent(config, capacity=1_000_000)
        for n in range(WEB_PROCESSES):
            servers.append(await procs.serve(config, "web", log=f"web-{n}.log"))
        for n in range(workers):
            servers.append(await procs.serve(config, "router", log=f"router-{n}.log"))
        webs = [server.url for server in servers[:WEB_PROCESSES]]
        return await _measure(settings, engine, webs, token, workers)
    finally:
        await asyncio.gather(*(server.stop() for server in servers))
        await engine.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{database}" WITH (FORCE)'))
        await admin.dispose()
        await _forget(prefix)


async def _measure(
    settings: Settings, engine: AsyncEngine, webs: list[str], token: str, workers: int
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=_connector(settings.concurrency)) as http:
        async with http.put(
            webs[0] + "/api/v1/me/presence", json={"presence": "online"}, headers=auth
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"going online failed: {await response.text()}")
        async with http.ws_connect(
            webs[0].replace("http", "ws", 1) + "/api/v1/events", headers=auth, max_msg_size=0
        ) as ws:
            observer = Observer()
            reader = asyncio.create_task(observer.run(ws))
            try:
                await _spread(http, webs, forms("warm", settings.warmup), settings.concurrency)
                await _wait_routed(engine, settings.warmup)
                batch = forms("ingest", settings.requests)
                started = time.perf_counter()
                await _spread(http, webs, batch, settings.concurrency)
                accepted = time.perf_counter()
                done = await _wait_routed(engine, settings.warmup + settings.requests)
                throughput = Throughput(settings.requests, done - started, accepted - started)
                rate = throughput.per_second / 2
                count = max(20, min(settings.latency_max, int(rate * settings.latency_seconds)))
                latency_batch = forms("latency", count)
                halves = [latency_batch[n :: len(webs)] for n in range(len(webs))]
                sent_lists = await asyncio.gather(
                    *(
                        paced(http, web, half, rate / len(webs))
                        for web, half in zip(webs, halves, strict=True)
                    )
                )
                sent = [s for chunk in sent_lists for s in chunk]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LOST_AFTER):
                        await observer.wait_texts([s.text for s in sent])
                delays = [
                    observer.message_at[s.text] - s.sent
                    for s in sent
                    if s.text in observer.message_at
                ]
                if not delays:
                    raise RuntimeError("no event reached the agent's WebSocket")
                latency = Latency.of(rate, sent, delays)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
    return {
        "workers": workers,
        "web_processes": len(webs),
        "ingest": throughput.as_dict(),
        "latency": latency.as_dict(),
    }


async def _spread(
    http: aiohttp.ClientSession, webs: list[str], batch: list[dict[str, str]], concurrency: int
) -> None:
    """Post `batch` split evenly over the web processes, `concurrency` in flight in all."""
    share = max(1, concurrency // len(webs))
    results = await asyncio.gather(
        *(saturate(http, web, batch[n :: len(webs)], share) for n, web in enumerate(webs))
    )
    failed = [s.status for chunk in results for s in chunk if s.status != 202]
    if failed:
        raise RuntimeError(f"{len(failed)} posts refused: {sorted(set(failed))}")


async def _wait_routed(engine: AsyncEngine, count: int) -> float:
    async with asyncio.timeout(600):
        while True:
            async with engine.connect() as connection:
                routed = int((await connection.execute(text(ROUTED))).scalar_one())
            if routed >= count:
                return time.perf_counter()
            await asyncio.sleep(0.05)


async def _forget(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def table(result: dict[str, Any]) -> str:
    bare = result["bare"]["per_second"]
    rows = [
        (
            "scale-out (PostgreSQL + Redis, 2 web processes)",
            "msgs/s",
            "vs bare",
            "POST → WS p50 / p99",
        )
    ]
    for run in result["runs"]:
        ingest, latency = run["ingest"], run["latency"]
        rows.append(
            (
                f"{run['workers']} router worker(s)",
                f"{ingest['per_second']:.0f}",
                f"{ingest['per_second'] / bare * 100:.1f} %",
                f"{latency['p50'] * 1000:.0f} / {latency['p99'] * 1000:.0f} ms "
                f"@ {latency['rate']:.0f}/s",
            )
        )
    rows.append(("bare aiohttp handler, same client", f"{bare:.0f}", "100 %", ""))
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    lines = [
        " | ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n(load average at the end {result['load_average']:.1f})"


if __name__ == "__main__":  # python -m bench.scale [--quick]: this benchmark alone
    import sys
    import tempfile

    from bench.settings import load

    with tempfile.TemporaryDirectory(prefix="pishkhan-bench-scale-") as tmp:
        print(table(asyncio.run(run(load(sys.argv[1:]), Path(tmp)))))
