"""The web form's `Idempotency-Key` under concurrency, through real HTTP on both backends: posts
with one key that arrive together count once and get the answer a retry after the first would."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from channels.base import Inbound
from channels.webform import WebformChannel, WebformConfig
from routing.router import INBOUND_TOPIC
from storage.models import ChannelCursor, Message, QueueEntry
from tests.fixtures.stack import Stack, eventually

SEED = "مشتری که در قبال دریافت کالا یا خدمات به شرکت پول پرداخت میکند"
POSTS = 20


async def stored_texts(stack: Stack) -> list[str]:
    """Every stored message's text, once the router has drained the queue."""

    async def drained() -> bool:
        async with stack.sessions() as session:
            waiting = await session.scalar(
                select(func.count())
                .select_from(QueueEntry)
                .where(QueueEntry.topic == INBOUND_TOPIC)
            )
        return waiting == 0

    await eventually(drained)
    async with stack.sessions() as session:
        return list((await session.scalars(select(Message.text).order_by(Message.id))).all())


async def inbound_metric(stack: Stack) -> str:
    async with stack.http.get(stack.base + "/metrics") as response:
        metrics = await response.text()
    return next(
        line for line in metrics.splitlines() if line.startswith("pishkhan_inbound_messages_total")
    )


async def test_one_key_posted_twenty_times_at_once_is_queued_once(stack: Stack) -> None:
    fields = {"name": "مریم", "email": "maryam@example.com", "message": SEED}
    headers = {"Idempotency-Key": "checkout-7731"}

    answers = await asyncio.gather(
        *(stack.post_form("contact", fields, headers) for _ in range(POSTS))
    )

    # Exactly one post queued it; every other one hears what a retry after it would hear.
    assert Counter(status for status, _ in answers) == {202: 1, 200: POSTS - 1}
    expected: dict[int, Any] = {
        202: {"id": "idem:checkout-7731", "status": "queued"},
        200: {"id": "idem:checkout-7731", "status": "duplicate"},
    }
    assert all(answer == expected[status] for status, answer in answers)
    assert await stored_texts(stack) == [SEED]
    assert await inbound_metric(stack) == ('pishkhan_inbound_messages_total{channel="contact"} 1.0')
    async with stack.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ChannelCursor)) == 1


async def test_one_key_with_different_bodies_at_once_keeps_the_accepted_one(stack: Stack) -> None:
    """Before the fix every post was answered 202 and all but one body were dropped unseen by
    the router's dedupe; now the one accepted body is the one stored, and the rest are told."""
    headers = {"Idempotency-Key": "support-ticket"}
    bodies = [{"email": "maryam@example.com", "message": f"{SEED} ({n})"} for n in range(POSTS)]

    answers = await asyncio.gather(*(stack.post_form("contact", b, headers) for b in bodies))

    accepted = [body for body, (status, _) in zip(bodies, answers, strict=True) if status == 202]
    refused = [answer for status, answer in answers if status == 422]
    assert len(accepted) == 1 and len(refused) == POSTS - 1
    assert all(
        answer == {"error": "Idempotency-Key was already used with a different body"}
        for answer in refused
    )
    assert await stored_texts(stack) == [accepted[0]["message"]]


class FlakyQueue:
    """The channel's `emit` (a queue that fails its first publish, slowly) and an in-memory
    cursor store: the channel's two dependencies, as the Protocols in `channels.base` say."""

    def __init__(self) -> None:
        self.queued: list[Inbound] = []
        self.publishes = 0
        self.cursors: dict[tuple[str, str], str] = {}

    async def emit(self, inbound: Inbound) -> None:
        self.publishes += 1
        await asyncio.sleep(0.05)  # long enough for the other posts to arrive and wait
        if self.publishes == 1:
            raise ConnectionError("the queue is unreachable")
        self.queued.append(inbound)

    async def get(self, channel: str, key: str) -> str | None:
        return self.cursors.get((channel, key))

    async def set(self, channel: str, key: str, value: str) -> None:
        self.cursors[(channel, key)] = value


async def test_a_key_whose_first_post_failed_is_queued_by_the_next() -> None:
    """The posts waiting behind a failed one are not told "duplicate" of something never
    queued: the next one queues it, and the rest are its duplicates."""
    queue = FlakyQueue()
    channel = WebformChannel(WebformConfig(name="contact"))
    await channel.start(queue.emit, queue)
    app = web.Application()
    for route in channel.routes():
        app.router.add_route(route.method, "/form" + route.path, route.handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/form"
    fields = {"email": "maryam@example.com", "message": SEED}
    try:
        async with aiohttp.ClientSession() as http:

            async def post() -> int:
                async with http.post(
                    url,
                    data=fields,
                    headers={"Idempotency-Key": "flaky"},
                ) as response:
                    return response.status

            statuses = await asyncio.gather(*(post() for _ in range(5)))
    finally:
        await runner.cleanup()
        await channel.stop()

    assert sorted(statuses) == [200, 200, 200, 202, 503]
    assert [inbound.external_id for inbound in queue.queued] == ["idem:flaky"]
    assert queue.publishes == 2
    assert channel._turns == {}  # nothing is kept for keys nobody is posting
