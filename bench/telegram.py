"""The Telegram webhook measurement: updates/s through the whole pipeline (`pishkhan serve` with a
Telegram channel in webhook mode, each update checked, parsed, queued, routed and assigned in
a fresh SQLite database) against a bare aiohttp handler doing the same HTTP (check the secret
header, read the body, answer 200 JSON), measured in the same run with the same client.

The pipeline's bot talks to a fake Bot API in this process (getMe, setWebhook), so no network is
needed. Run as `python -m bench.telegram --bare` for the bare server alone."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import procs
from bench.database import Database
from bench.settings import Settings
from tests.fixtures.telegram_api import fake_telegram, message, user

CHANNEL = "bench"
PATH = f"/channels/telegram/{CHANNEL}/webhook"
SECRET = "bench_webhook_secret"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TOKEN_ENV = "PISHKHAN_BENCH_TELEGRAM_TOKEN"
SECRET_ENV = "PISHKHAN_BENCH_TELEGRAM_SECRET"
AGENT_CAPACITY = 10_000_000
BARE_RUNS = 3


def updates(tag: str, count: int, *, first_id: int) -> list[bytes]:
    """`count` webhook bodies, each from its own chat with a text no other has."""
    bodies = []
    for i in range(count):
        chat = 10_000_000 + first_id + i
        text = f"{tag}:{i} سلام، سفارشم هنوز نرسیده؛ لطفاً وضعیت را بگویید."
        update = {
            "update_id": first_id + i,
            "message": message(chat, 1, text=text, sender=user(chat, "مشتری", str(i))),
        }
        bodies.append(json.dumps(update, ensure_ascii=False).encode())
    return bodies


async def post_all(base: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[int]]:
    """Post the bodies with `concurrency` in flight; the seconds it took and the statuses."""
    pending = iter(bodies)
    statuses: list[int] = []
    headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for body in pending:
                async with http.post(base + PATH, data=body, headers=headers) as response:
                    await response.read()
                    statuses.append(response.status)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, statuses


def _check(statuses: list[int], what: str) -> None:
    bad = [status for status in statuses if status != 200]
    if bad:
        raise RuntimeError(f"{what}: {len(bad)} updates were not answered 200 (e.g. {bad[0]})")


def _config(workdir: Path, base_url: str, synchronous: str) -> Path:
    config = workdir / "config.yaml"
    data = {
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {
            "url": f"sqlite+aiosqlite:///{workdir / 'pishkhan.db'}",
            "sqlite_synchronous": synchronous,
        },
        "channels": [
            {
                "type": "telegram",
                "name": CHANNEL,
                "token": "${" + TOKEN_ENV + "}",
                "mode": "webhook",
                "base_url": base_url,
                "webhook_secret": "${" + SECRET_ENV + "}",
                "webhook_url": "http://127.0.0.1/unused",
            }
        ],
    }
    config.write_text(json.dumps(data, indent=2))
    return config


async def pipeline(settings: Settings, workdir: Path) -> dict[str, Any]:
    async with fake_telegram() as fake:
        os.environ[TOKEN_ENV], os.environ[SECRET_ENV] = fake.token, SECRET
        config = _config(workdir, fake.base_url, settings.synchronous)
        database = Database(workdir / "pishkhan.db")
        server, token = await procs.start_pishkhan(config, capacity=AGENT_CAPACITY)
        try:
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
            async with asyncio.timeout(30):
                # The channel registers itself: another process's request, nothing to await.
                while fake.webhook is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            _, statuses = await post_all(
                server.url, updates("warm", settings.warmup, first_id=1), settings.concurrency
            )
            _check(statuses, "warm-up")
            async with asyncio.timeout(120):
                await database.wait_routed(settings.warmup)
            bodies = updates("run", settings.requests, first_id=1 + settings.warmup)
            started = time.perf_counter()
            accepted, statuses = await post_all(server.url, bodies, settings.concurrency)
            _check(statuses, "run")
            async with asyncio.timeout(600):
                last = await database.wait_routed(settings.warmup + settings.requests)
            # Redelivered (Telegram retries what it thinks was not received): stored once.
            _, statuses = await post_all(server.url, bodies[:100], settings.concurrency)
            _check(statuses, "redelivery")
            await asyncio.sleep(1.0)
            counts = database.counts()
            expected = settings.warmup + settings.requests
            if counts["messages"] != expected:
                raise RuntimeError(f"expected {expected} messages stored once, found {counts}")
        finally:
            await server.stop()
    seconds = last - started
    return {
        "updates": settings.requests,
        "seconds": seconds,
        "per_second": settings.requests / seconds,
        "accepted_per_second": settings.requests / accepted,
        "counts": counts,
        "duplicates": counts["messages"] - expected,
    }


async def bare(settings: Settings, workdir: Path) -> dict[str, Any]:
    server = await procs.start(["-m", "bench.telegram", "--bare"], log=workdir / "bare.log")
    try:
        _, statuses = await post_all(
            server.url, updates("warm", settings.warmup, first_id=1), settings.concurrency
        )
        _check(statuses, "bare warm-up")
        best = float("inf")
        for _ in range(BARE_RUNS):
            bodies = updates("run", settings.requests, first_id=1 + settings.warmup)
            elapsed, statuses = await post_all(server.url, bodies, settings.concurrency)
            _check(statuses, "bare run")
            best = min(best, elapsed)
    finally:
        await server.stop()
    return {"updates": settings.requests, "seconds": best, "per_second": settings.requests / best}


async def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Both measurements; the pipeline first, then its ceiling on the same machine."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    measured = await pipeline(settings, workdir)
    ceiling = await bare(settings, workdir)
    return {
        "pipeline": measured,
        "bare": ceiling,
        "ratio": measured["per_second"] / ceiling["per_second"],
        "concurrency": settings.concurrency,
    }


def table(result: dict[str, Any]) -> str:
    pipeline, ceiling = result["pipeline"], result["bare"]
    return "\n".join(
        [
            f"telegram webhook — {pipeline['updates']} updates, each from a new chat, at "
            f"concurrency {result['concurrency']}; bare is the best of {BARE_RUNS} runs",
            f"  pipeline (answered 200 once queued)  "
            f"{pipeline['accepted_per_second']:8.0f} updates/s accepted",
            f"  pipeline (stored and assigned)       {pipeline['per_second']:8.0f} updates/s",
            f"  bare aiohttp handler                 {ceiling['per_second']:8.0f} updates/s",
            f"  pipeline / bare                      {result['ratio'] * 100:8.1f} %",
            f"  100 updates delivered twice, stored twice: {pipeline['duplicates']}",
        ]
    )


# the bare server -----------------------------------------------------------------------------


async def _accept(request: web.Request) -> web.Response:
    # The same HTTP work as the channel's handler: the secret header, the body, a JSON answer.
    if request.headers.get(SECRET_HEADER) != SECRET:
        return web.json_response({"ok": False}, status=401)
    await request.read()
    return web.json_response({"ok": True})


async def _serve_bare(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_post("/channels/telegram/{name}/webhook", _accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"Bare aiohttp is serving on http://{host}:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.telegram", description=__doc__)
    parser.add_argument("--bare", action="store_true", help="serve the bare handler")
    parser.add_argument("--quick", action="store_true", help="a small run")
    args = parser.parse_args()
    if args.bare:
        asyncio.run(_serve_bare("127.0.0.1", 0))
        return
    import tempfile

    from bench.settings import QUICK

    settings = QUICK if args.quick else Settings()
    with tempfile.TemporaryDirectory(prefix="pishkhan-bench-telegram-") as tmp:
        print(table(asyncio.run(run(settings, Path(tmp)))))


if __name__ == "__main__":
    main()
