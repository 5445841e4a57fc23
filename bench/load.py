"""The load client: web form posts at a fixed concurrency or a fixed pace, and the agent's
WebSocket, time-stamped with `time.perf_counter` in this process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

FORM_PATH = "/channels/webform/contact"


def forms(tag: str, count: int) -> list[dict[str, str]]:
    """`count` submissions from different senders, each with a text no other post has."""
    return [
        {
            "name": f"Bench {tag} {i}",
            "email": f"{tag}-{i}@bench.example.com",
            "subject": "Benchmark",
            "message": f"{tag}:{i} سلام، سفارشم هنوز نرسیده؛ لطفاً وضعیت را بگویید.",
        }
        for i in range(count)
    ]


@dataclass
class Sent:
    text: str
    sent: float
    answered: float = 0.0
    status: int = 0


async def _post(http: aiohttp.ClientSession, url: str, form: dict[str, str]) -> Sent:
    record = Sent(form["message"], time.perf_counter())
    async with http.post(url, data=form) as response:
        await response.read()
        record.status = response.status
    record.answered = time.perf_counter()
    return record


async def saturate(
    http: aiohttp.ClientSession, base: str, batch: Sequence[dict[str, str]], concurrency: int
) -> list[Sent]:
    """Post `batch` with `concurrency` posts in flight at all times (a closed loop)."""
    url = base + FORM_PATH
    pending = iter(batch)
    done: list[Sent] = []

    async def worker() -> None:
        for form in pending:
            done.append(await _post(http, url, form))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def paced(
    http: aiohttp.ClientSession, base: str, batch: Sequence[dict[str, str]], rate: float
) -> list[Sent]:
    """Post `batch` at `rate` posts per second, each on time whether or not earlier ones have
    been answered (an open loop, so a slow server cannot slow the arrivals down)."""
    url = base + FORM_PATH
    start = time.perf_counter()
    tasks: list[asyncio.Task[Sent]] = []
    for i, form in enumerate(batch):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_post(http, url, form), name=f"post-{i}"))
    return list(await asyncio.gather(*tasks))


@dataclass
class Observer:
    """The agent's event stream: when each message's text first arrived on it."""

    message_at: dict[str, float] = field(default_factory=dict)
    closed: str | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            event = json.loads(message.data)
            if event["type"] == "message.created":
                self.message_at.setdefault(event["data"]["message"]["text"], now)
                self._changed.set()
        self.closed = f"event stream closed ({ws.close_code})"
        self._changed.set()

    async def wait_texts(self, texts: Sequence[str]) -> None:
        """Wait until every text has arrived; raises if the stream closes first. Callers bound
        the wait with `asyncio.timeout`."""
        missing = set(texts)
        while missing := {text for text in missing if text not in self.message_at}:
            if self.closed:
                raise RuntimeError(self.closed)
            self._changed.clear()
            await self._changed.wait()


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0–100) of `values`."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
