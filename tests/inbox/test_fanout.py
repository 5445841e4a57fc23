"""Events between processes through the real Redis: what one process commits reaches the other
processes' listeners (not its own twice), malformed messages are ignored, and a lost
connection ends the streams so they catch up from the log."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from inbox.accounts import Principal
from inbox.fanout import RedisFanout
from inbox.realtime import Hub, Signal, Subscriber
from routing.events import Published
from tests.fixtures.services import REDIS_URL
from tests.fixtures.stack import eventually


def _event(event_id: int) -> Published:
    return Published(
        id=event_id,
        type="message.created",
        conversation_id=12,
        team_id=3,
        assignee_id=7,
        data={"message": {"id": 99, "text": "سلام، سفارشم هنوز نرسیده"}},
        created_at=datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
        customer_id=5,
        recipient_id=None,
        scopes=((3, 7), (None, None)),
    )


async def test_events_reach_the_other_process_once_and_intact(redis_prefix: str) -> None:
    channel = f"{redis_prefix}:events"
    clients = [Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)]
    web, router = RedisFanout(clients[0], channel), RedisFanout(clients[1], channel)
    received: list[Published] = []
    own: list[Published] = []

    async def web_listener(events: Sequence[Published]) -> None:
        received.extend(events)

    async def router_listener(events: Sequence[Published]) -> None:
        own.extend(events)

    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(web.run([web_listener], stopping, on_gap=lambda: 0)),
        asyncio.create_task(router.run([router_listener], stopping, on_gap=lambda: 0)),
    ]
    try:
        await asyncio.wait_for(web.connected.wait(), 5)
        await asyncio.wait_for(router.connected.wait(), 5)
        await clients[0].publish(channel, b"not json")  # ignored, nothing breaks
        await clients[0].publish(channel, b'{"origin": "x", "events": [{"id": "?"}]}')
        await router.publish([_event(1), _event(2)])
        await eventually(lambda: _some(received))
        await asyncio.sleep(0.2)
        assert received == [_event(1), _event(2)]
        assert own == []  # the router handed its own events to its listeners already
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
        for client in clients:
            await client.aclose()


async def test_a_lost_connection_ends_the_streams_to_catch_up(redis_prefix: str) -> None:
    channel = f"{redis_prefix}:events"
    client = Redis.from_url(REDIS_URL)
    fanout = RedisFanout(client, channel)
    gaps: list[int] = []
    stopping = asyncio.Event()
    task = asyncio.create_task(fanout.run([], stopping, on_gap=lambda: gaps.append(1) or 1))
    try:
        await asyncio.wait_for(fanout.connected.wait(), 5)
        assert gaps == []
        # Redis drops our subscription connection (a restart looks the same to the client).
        await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await eventually(lambda: _some(gaps), timeout=5)
    finally:
        stopping.set()
        await task
        await client.aclose()


async def _some(items: list[object]) -> bool:
    return bool(items)


def _agent(agent_id: int, name: str) -> Principal:
    return Principal(
        id=agent_id,
        email=f"{agent_id}@example.com",
        name=name,
        role="admin",
        team_ids=frozenset(),
        csrf_token=None,
    )


def _signals(subscriber: Subscriber) -> list[dict[str, Any]]:
    found = []
    while not subscriber.queue.empty():
        item = subscriber.queue.get_nowait()
        if isinstance(item, Signal):
            found.append(item.payload)
    return found


async def test_who_views_and_types_reaches_agents_on_another_web_process(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("inbox.realtime.REMOTE_ROOM_SECONDS", 0.5)
    channel = f"{redis_prefix}:events"
    clients = [Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)]
    fanouts = [RedisFanout(client, channel) for client in clients]
    hubs = [Hub(), Hub()]
    stopping = asyncio.Event()
    tasks = []
    for hub, fanout in zip(hubs, fanouts, strict=True):
        hub.relay = fanout.signal
        tasks.append(
            asyncio.create_task(fanout.run([], stopping, on_gap=lambda: 0, on_signal=hub.receive))
        )
    try:
        for fanout in fanouts:
            await asyncio.wait_for(fanout.connected.wait(), 5)
        sara = hubs[0].subscribe(_agent(1, "سارا"))
        ali = hubs[1].subscribe(_agent(2, "علی"))
        hubs[0].view(sara, 42)
        hubs[0].typing(sara, 42)
        seen: list[dict[str, Any]] = []

        async def ali_sees_sara_typing() -> bool:
            seen.extend(_signals(ali))
            return any(s.get("typing") == [{"id": 1, "name": "سارا"}] for s in seen)

        await eventually(ali_sees_sara_typing)
        # Ali opens it on his process: the state he gets names both of them.
        hubs[1].view(ali, 42)
        state = hubs[1].collision(42)
        assert state is not None
        assert [v["name"] for v in state["viewing"]] == ["سارا", "علی"]
        # A customer typing, told on Sara's process, reaches Ali's stream.
        hubs[0].tell(42, {"type": "customer_typing"}, team_id=None, assignee_id=None)

        async def ali_sees_the_customer() -> bool:
            seen.extend(_signals(ali))
            return any(s.get("type") == "customer_typing" for s in seen)

        await eventually(ali_sees_the_customer)
        # Sara's process dies without a word: her presence fades on Ali's after the hold time.
        hubs[0].relay = None
        await asyncio.sleep(0.7)
        state = hubs[1].collision(42)
        assert state is not None and [v["name"] for v in state["viewing"]] == ["علی"]
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
        for client in clients:
            await client.aclose()
