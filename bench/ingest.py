"""The ingest measurements: web form posts through the whole pipeline, and the same client
against the bare aiohttp handler (the ceiling)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import procs
from bench.database import Database
from bench.load import Observer, Sent, forms, paced, percentile, saturate
from bench.settings import Settings

AGENT_CAPACITY = 10_000_000
BARE_RUNS = 3
LOST_AFTER = 10.0
"""Seconds after the last paced post after which a missing WebSocket event counts as lost."""


@dataclass(frozen=True)
class Throughput:
    requests: int
    seconds: float
    accepted_seconds: float
    """Until the last post was answered (for the pipeline: queued, not yet routed)."""

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": self.seconds,
            "per_second": self.per_second,
            "accepted_per_second": self.requests / self.accepted_seconds,
        }


@dataclass(frozen=True)
class Latency:
    rate: float
    posts: int
    samples: int
    """Posts whose event arrived; `posts - samples` events were lost."""
    p50: float
    p99: float
    max: float
    post_p50: float
    post_p99: float

    @classmethod
    def of(cls, rate: float, sent: list[Sent], delays: list[float]) -> Latency:
        posts = [s.answered - s.sent for s in sent]
        return cls(
            rate=rate,
            posts=len(sent),
            samples=len(delays),
            p50=percentile(delays, 50),
            p99=percentile(delays, 99),
            max=max(delays),
            post_p50=percentile(posts, 50),
            post_p99=percentile(posts, 99),
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _check_statuses(sent: list[Sent], what: str) -> None:
    bad = [s.status for s in sent if s.status != 202]
    if bad:
        raise RuntimeError(f"{what}: {len(bad)} posts were not answered 202 (e.g. {bad[0]})")


def _connector(limit: int) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(limit=limit, force_close=False)


async def pipeline(settings: Settings, workdir: Path) -> tuple[Throughput, Latency, dict[str, Any]]:
    """Run `pishkhan serve` on a fresh SQLite database with one online agent and measure both."""
    config = procs.write_config(workdir, synchronous=settings.synchronous)
    database = Database(workdir / "pishkhan.db")
    server, token = await procs.start_pishkhan(config, capacity=AGENT_CAPACITY)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession(connector=_connector(settings.concurrency)) as http:
            async with http.put(
                server.url + "/api/v1/me/presence", json={"presence": "online"}, headers=auth
            ) as response:
                if response.status != 200:
                    raise RuntimeError(f"going online failed: {await response.text()}")
            async with http.ws_connect(
                server.url.replace("http", "ws", 1) + "/api/v1/events",
                headers=auth,
                max_msg_size=0,
            ) as ws:
                observer = Observer()
                reader = asyncio.create_task(observer.run(ws), name="bench-events")
                try:
                    throughput = await _saturated(http, server.url, database, settings)
                    latency = await _paced_pipeline(
                        server.url, observer, settings, rate=throughput.per_second / 2
                    )
                finally:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
        expected = settings.warmup + settings.requests + latency.posts
        counts = database.counts()
        if counts["messages"] != expected or counts["routed"] != expected:
            raise RuntimeError(f"expected {expected} stored and assigned, found {counts}")
    finally:
        await server.stop()
    return throughput, latency, counts


async def _saturated(
    http: aiohttp.ClientSession, base: str, database: Database, settings: Settings
) -> Throughput:
    _check_statuses(
        await saturate(http, base, forms("warm", settings.warmup), settings.concurrency), "warmup"
    )
    async with asyncio.timeout(120):
        await database.wait_routed(settings.warmup)
    batch = forms("ingest", settings.requests)
    started = time.perf_counter()
    sent = await saturate(http, base, batch, settings.concurrency)
    accepted = time.perf_counter()
    _check_statuses(sent, "ingest")
    async with asyncio.timeout(600):
        last = await database.wait_routed(settings.warmup + settings.requests)
    return Throughput(settings.requests, last - started, accepted - started)


def _latency_batch(tag: str, settings: Settings, rate: float) -> list[dict[str, str]]:
    count = max(20, min(settings.latency_max, int(rate * settings.latency_seconds)))
    return forms(tag, count)


async def _paced_pipeline(
    base: str, observer: Observer, settings: Settings, *, rate: float
) -> Latency:
    batch = _latency_batch("latency", settings, rate)
    async with aiohttp.ClientSession(connector=_connector(256)) as http:
        sent = await paced(http, base, batch, rate)
    _check_statuses(sent, "latency")
    # A message whose event never comes is counted as lost, not waited for forever.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LOST_AFTER):
            await observer.wait_texts([s.text for s in sent])
    delays = [observer.message_at[s.text] - s.sent for s in sent if s.text in observer.message_at]
    if not delays:
        raise RuntimeError("no message.created event reached the agent's WebSocket")
    return Latency.of(rate, sent, delays)


async def bare(settings: Settings, workdir: Path, *, rate: float) -> tuple[Throughput, Latency]:
    """The same client against the bare handler: saturated, then paced at `rate`."""
    server = await procs.start_bare(workdir)
    try:
        async with aiohttp.ClientSession(connector=_connector(settings.concurrency)) as http:
            await saturate(http, server.url, forms("warm", settings.warmup), settings.concurrency)
            # The ceiling is the best of a few runs: they are short, and a neighbour's burst of
            # CPU should lower no ceiling.
            elapsed = float("inf")
            for _ in range(BARE_RUNS):
                started = time.perf_counter()
                sent = await saturate(
                    http, server.url, forms("ingest", settings.requests), settings.concurrency
                )
                elapsed = min(elapsed, time.perf_counter() - started)
                _check_statuses(sent, "bare ingest")
        throughput = Throughput(settings.requests, elapsed, elapsed)
        batch = _latency_batch("latency", settings, rate)
        async with aiohttp.ClientSession(connector=_connector(256)) as http:
            sent = await paced(http, server.url, batch, rate)
        _check_statuses(sent, "bare latency")
        latency = Latency.of(rate, sent, [s.answered - s.sent for s in sent])
    finally:
        await server.stop()
    return throughput, latency
