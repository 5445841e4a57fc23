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
from pathlib import Path
from typing import Any

from aiohttp import web

from bench import procs, webhooks
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


def _requests(tag: str, count: int, first: int) -> list[webhooks.Request]:
    headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    return [(body, headers) for body in updates(tag, count, first_id=first)]


def _config(workdir: Path, base_url: str, synchronous: str) -> Path:
    return procs.write_config(
        workdir,
        synchronous=synchronous,
        channels=[
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
    )


async def pipeline(settings: Settings, workdir: Path) -> dict[str, Any]:
    async with fake_telegram() as fake:
        os.environ[TOKEN_ENV], os.environ[SECRET_ENV] = fake.token, SECRET
        config = _config(workdir, fake.base_url, settings.synchronous)
        database = Database(workdir / "pishkhan.db")
        server, token = await procs.start_pishkhan(config, capacity=AGENT_CAPACITY)
        try:
            async with asyncio.timeout(30):
                # The channel registers itself: another process's request, nothing to await.
                while fake.webhook is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            return await webhooks.pipeline(server, token, database, settings, PATH, _requests)
        finally:
            await server.stop()


async def bare(settings: Settings, workdir: Path) -> dict[str, Any]:
    return await webhooks.bare("bench.telegram", settings, workdir, PATH, _requests)


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
            f"telegram webhook — {pipeline['count']} updates, each from a new chat, at "
            f"concurrency {result['concurrency']}; bare is the best of {webhooks.BARE_RUNS} runs",
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.telegram", description=__doc__)
    parser.add_argument("--bare", action="store_true", help="serve the bare handler")
    parser.add_argument("--quick", action="store_true", help="a small run")
    args = parser.parse_args()
    if args.bare:
        asyncio.run(webhooks.serve_bare("/channels/telegram/{name}/webhook", _accept))
        return
    import tempfile

    from bench.settings import QUICK

    settings = QUICK if args.quick else Settings()
    with tempfile.TemporaryDirectory(prefix="pishkhan-bench-telegram-") as tmp:
        print(table(asyncio.run(run(settings, Path(tmp)))))


if __name__ == "__main__":
    main()
