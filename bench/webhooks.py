"""What the webhook benchmarks (Telegram, Meta) share: the same client posts the same requests to
a started `pishkhan serve` and to its bare handler, and each is measured the same way."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import procs
from bench.database import Database
from bench.settings import Settings

Request = tuple[bytes, dict[str, str]]
"""A webhook body and the headers it is posted with (its signature or secret)."""
Requests = Callable[[str, int, int], list[Request]]
"""`(tag, count, first)`: `count` requests, each from its own sender, numbered from `first`."""
BARE_RUNS = 3
"""The ceiling is the best of a few short runs: a neighbour's burst of CPU lowers no ceiling."""


async def post_all(url: str, requests: list[Request], concurrency: int) -> tuple[float, list[int]]:
    """Post the requests with `concurrency` in flight; the seconds it took and the statuses."""
    pending = iter(requests)
    statuses: list[int] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def worker() -> None:
            for body, headers in pending:
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses.append(response.status)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, statuses


def check(statuses: list[int], what: str) -> None:
    bad = [status for status in statuses if status != 200]
    if bad:
        raise RuntimeError(f"{what}: {len(bad)} requests were not answered 200 (e.g. {bad[0]})")


async def pipeline(
    server: procs.Server,
    token: str,
    database: Database,
    settings: Settings,
    path: str,
    requests: Requests,
) -> dict[str, Any]:
    """With one agent online: warm up, then time `settings.requests` requests until every one is
    stored and assigned; then redeliver 100 of them, which must be stored once."""
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            server.url + "/api/v1/me/presence",
            json={"presence": "online"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        if response.status != 200:
            raise RuntimeError(f"going online failed: {await response.text()}")
    url = server.url + path
    _, statuses = await post_all(url, requests("warm", settings.warmup, 1), settings.concurrency)
    check(statuses, "warm-up")
    async with asyncio.timeout(120):
        await database.wait_routed(settings.warmup)
    run = requests("run", settings.requests, 1 + settings.warmup)
    started = time.perf_counter()
    accepted, statuses = await post_all(url, run, settings.concurrency)
    check(statuses, "run")
    async with asyncio.timeout(600):
        last = await database.wait_routed(settings.warmup + settings.requests)
    # Redelivered (the provider retries what it thinks was not received): stored once.
    _, statuses = await post_all(url, run[:100], settings.concurrency)
    check(statuses, "redelivery")
    await asyncio.sleep(1.0)
    counts = database.counts()
    expected = settings.warmup + settings.requests
    if counts["messages"] != expected:
        raise RuntimeError(f"expected {expected} messages stored once, found {counts}")
    seconds = last - started
    return {
        "count": settings.requests,
        "seconds": seconds,
        "per_second": settings.requests / seconds,
        "accepted_per_second": settings.requests / accepted,
        "counts": counts,
        "duplicates": counts["messages"] - expected,
    }


async def bare(
    module: str, settings: Settings, workdir: Path, path: str, requests: Requests
) -> dict[str, Any]:
    """The same client against `python -m <module> --bare`: the best of `BARE_RUNS` runs."""
    server = await procs.start(["-m", module, "--bare"], log=workdir / "bare.log")
    try:
        url = server.url + path
        warm = requests("warm", settings.warmup, 1)
        _, statuses = await post_all(url, warm, settings.concurrency)
        check(statuses, "bare warm-up")
        best = float("inf")
        for _ in range(BARE_RUNS):
            run = requests("run", settings.requests, 1 + settings.warmup)
            elapsed, statuses = await post_all(url, run, settings.concurrency)
            check(statuses, "bare run")
            best = min(best, elapsed)
    finally:
        await server.stop()
    return {"count": settings.requests, "seconds": best, "per_second": settings.requests / best}


async def serve_bare(
    route: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> None:
    """The bare server: one POST route on aiohttp, until SIGINT or SIGTERM."""
    app = web.Application()
    app.router.add_post(route, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"Bare aiohttp is serving on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
