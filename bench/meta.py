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
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bench import procs, webhooks
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


def _requests(tag: str, count: int, first: int) -> list[webhooks.Request]:
    return [
        (body, {SIGNATURE_HEADER: signature, "Content-Type": "application/json"})
        for body, signature in deliveries(tag, count, first=first)
    ]


def _config(workdir: Path, synchronous: str) -> Path:
    return procs.write_config(
        workdir,
        synchronous=synchronous,
        channels=[
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
    )


async def pipeline(settings: Settings, workdir: Path) -> dict[str, Any]:
    os.environ.update(ENV)
    config = _config(workdir, settings.synchronous)
    database = Database(workdir / "pishkhan.db")
    server, token = await procs.start_pishkhan(config, capacity=AGENT_CAPACITY)
    try:
        return await webhooks.pipeline(server, token, database, settings, PATH, _requests)
    finally:
        await server.stop()


async def bare(settings: Settings, workdir: Path) -> dict[str, Any]:
    return await webhooks.bare("bench.meta", settings, workdir, PATH, _requests)


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
            f"meta webhook (WhatsApp) — {pipeline['count']} signed deliveries, each from a "
            f"new number, at concurrency {result['concurrency']}; bare is the best of "
            f"{webhooks.BARE_RUNS} runs",
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.meta", description=__doc__)
    parser.add_argument("--bare", action="store_true", help="serve the bare handler")
    parser.add_argument("--quick", action="store_true", help="a small run")
    args = parser.parse_args()
    if args.bare:
        asyncio.run(webhooks.serve_bare("/channels/meta/{name}/webhook", _accept))
        return
    import tempfile

    from bench.settings import QUICK

    settings = QUICK if args.quick else Settings()
    with tempfile.TemporaryDirectory(prefix="pishkhan-bench-meta-") as tmp:
        print(table(asyncio.run(run(settings, Path(tmp)))))


if __name__ == "__main__":
    main()
