"""The Meta webhook measurement: signed WhatsApp Cloud deliveries/s through the whole pipeline
(`pishkhan serve` with a WhatsApp channel, each delivery's `X-Hub-Signature-256` verified over
the raw body, parsed, queued, routed and assigned in a fresh SQLite database) against a bare
aiohttp handler doing the same HTTP and the same HMAC check (read the body, verify the
signature, answer 200 JSON), measured in the same run with the same client.

Ingest calls no Graph API (text messages carry no media), so no network is needed. Run as
`python -m bench.meta --bare` for the bare server alone."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
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

CHANNEL = "bench"
PATH = f"/channels/meta/{CHANNEL}/webhook"
APP_SECRET = "bench-meta-app-secret"
PHONE_NUMBER_ID = "106540352242922"
SIGNATURE_HEADER = "X-Hub-Signature-256"
ENV = {
    "PISHKHAN_BENCH_META_TOKEN": "EAAG-bench-token",
    "PISHKHAN_BENCH_META_SECRET": APP_SECRET,
    "PISHKHAN_BENCH_META_VERIFY": "bench-verify",
}
AGENT_CAPACITY = 10_000_000
BARE_RUNS = 3


def deliveries(tag: str, count: int, *, first: int) -> list[tuple[bytes, str]]:
    """`count` signed webhook bodies (as Meta builds them: compact, non-ASCII escaped), each
    from its own WhatsApp number with a text no other has."""
    bodies = []
    now = str(int(time.time()))
    for i in range(count):
        wa_id = str(989_100_000_000 + first + i)
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001234", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": f"مشتری {i}"}, "wa_id": wa_id}],
            "messages": [
                {
                    "from": wa_id,
                    "id": f"wamid.{tag}.{first + i}",
                    "timestamp": now,
                    "type": "text",
                    "text": {"body": f"{tag}:{i} سلام، سفارشم هنوز نرسیده؛ لطفاً وضعیت را بگویید."},
                }
            ],
        }
        delivery = {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}
            ],
        }
        body = json.dumps(delivery, separators=(",", ":")).encode()
        bodies.append((body, _sign(body)))
    return bodies


def _sign(body: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


async def post_all(
    base: str, bodies: list[tuple[bytes, str]], concurrency: int
) -> tuple[float, list[int]]:
    """Post the bodies with `concurrency` in flight; the seconds it took and the statuses."""
    pending = iter(bodies)
    statuses: list[int] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for body, signature in pending:
                headers = {SIGNATURE_HEADER: signature, "Content-Type": "application/json"}
                async with http.post(base + PATH, data=body, headers=headers) as response:
                    await response.read()
                    statuses.append(response.status)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, statuses


def _check(statuses: list[int], what: str) -> None:
    bad = [status for status in statuses if status != 200]
    if bad:
        raise RuntimeError(f"{what}: {len(bad)} deliveries were not answered 200 (e.g. {bad[0]})")


def _config(workdir: Path, synchronous: str) -> Path:
    config = workdir / "config.yaml"
    data = {
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {
            "url": f"sqlite+aiosqlite:///{workdir / 'pishkhan.db'}",
            "sqlite_synchronous": synchronous,
        },
        "channels": [
            {
                "type": "whatsapp",
                "name": CHANNEL,
                "phone_number_id": PHONE_NUMBER_ID,
                "access_token": "${PISHKHAN_BENCH_META_TOKEN}",
                "app_secret": "${PISHKHAN_BENCH_META_SECRET}",
                "verify_token": "${PISHKHAN_BENCH_META_VERIFY}",
                "graph_url": "http://127.0.0.1:9",  # never called while ingesting text
            }
        ],
    }
    config.write_text(json.dumps(data, indent=2))
    return config


async def pipeline(settings: Settings, workdir: Path) -> dict[str, Any]:
    os.environ.update(ENV)
    config = _config(workdir, settings.synchronous)
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
        _, statuses = await post_all(
            server.url, deliveries("warm", settings.warmup, first=1), settings.concurrency
        )
        _check(statuses, "warm-up")
        async with asyncio.timeout(120):
            await database.wait_routed(settings.warmup)
        bodies = deliveries("run", settings.requests, first=1 + settings.warmup)
        started = time.perf_counter()
        accepted, statuses = await post_all(server.url, bodies, settings.concurrency)
        _check(statuses, "run")
        async with asyncio.timeout(600):
            last = await database.wait_routed(settings.warmup + settings.requests)
        # Redelivered (Meta retries what it thinks was not received): stored once.
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
        "deliveries": settings.requests,
        "seconds": seconds,
        "per_second": settings.requests / seconds,
        "accepted_per_second": settings.requests / accepted,
        "counts": counts,
        "duplicates": counts["messages"] - expected,
    }


async def bare(settings: Settings, workdir: Path) -> dict[str, Any]:
    server = await procs.start(["-m", "bench.meta", "--bare"], log=workdir / "bare.log")
    try:
        _, statuses = await post_all(
            server.url, deliveries("warm", settings.warmup, first=1), settings.concurrency
        )
        _check(statuses, "bare warm-up")
        best = float("inf")
        for _ in range(BARE_RUNS):
            bodies = deliveries("run", settings.requests, first=1 + settings.warmup)
            elapsed, statuses = await post_all(server.url, bodies, settings.concurrency)
            _check(statuses, "bare run")
            best = min(best, elapsed)
    finally:
        await server.stop()
    return {
        "deliveries": settings.requests,
        "seconds": best,
        "per_second": settings.requests / best,
    }


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
            f"meta webhook (WhatsApp) — {pipeline['deliveries']} signed deliveries, each from a "
            f"new number, at concurrency {result['concurrency']}; bare is the best of "
            f"{BARE_RUNS} runs",
            f"  pipeline (answered 200 once queued)  "
            f"{pipeline['accepted_per_second']:8.0f} deliveries/s accepted",
            f"  pipeline (verified, stored, assigned) {pipeline['per_second']:7.0f} deliveries/s",
            f"  bare aiohttp handler (HMAC checked)  {ceiling['per_second']:8.0f} deliveries/s",
            f"  pipeline / bare                      {result['ratio'] * 100:8.1f} %",
            f"  100 deliveries sent twice, stored twice: {pipeline['duplicates']}",
        ]
    )


# the bare server -----------------------------------------------------------------------------


async def _accept(request: web.Request) -> web.Response:
    # The same HTTP work as the channel's handler: the body, its signature, a JSON answer.
    body = await request.read()
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not hmac.compare_digest(_sign(body).encode(), given.encode()):
        return web.json_response({"error": "signature"}, status=401)
    return web.json_response({"queued": 1})


async def _serve_bare(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_post("/channels/meta/{name}/webhook", _accept)
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
    parser = argparse.ArgumentParser(prog="python -m bench.meta", description=__doc__)
    parser.add_argument("--bare", action="store_true", help="serve the bare handler")
    parser.add_argument("--quick", action="store_true", help="a small run")
    args = parser.parse_args()
    if args.bare:
        asyncio.run(_serve_bare("127.0.0.1", 0))
        return
    import tempfile

    from bench.settings import QUICK

    settings = QUICK if args.quick else Settings()
    with tempfile.TemporaryDirectory(prefix="pishkhan-bench-meta-") as tmp:
        print(table(asyncio.run(run(settings, Path(tmp)))))


if __name__ == "__main__":
    main()
