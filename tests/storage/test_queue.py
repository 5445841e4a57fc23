"""The unified queue's behaviour, the same on every backend: SqlQueue on SQLite and PostgreSQL,
and RedisQueue; then what only the Redis backend has (partition leases, crashed consumers)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from storage.queue import Handler, Item, Queue, QueueStats
from storage.queue.redis import GROUP, OWNER, RedisQueue
from tests.fixtures.queues import Queues, queue_backend, queues
from tests.fixtures.services import REDIS_URL

__all__ = ["queue_backend", "queues"]

TOPIC = "inbound"
REPO = Path(__file__).resolve().parents[2]


class Recorder:
    """A handler that records what it handled, and notices two items of one key at once."""

    def __init__(self, *, max_delay: float = 0.0, name: str = "") -> None:
        self.max_delay = max_delay
        self.name = name
        self.seen: list[tuple[str, bytes]] = []
        self.active: set[str] = set()
        self.overlaps: list[str] = []

    async def __call__(self, item: Item) -> None:
        if item.key in self.active:
            self.overlaps.append(item.key)
        self.active.add(item.key)
        try:
            if self.max_delay:
                await asyncio.sleep(random.uniform(0, self.max_delay))
            self.seen.append((item.key, item.payload))
        finally:
            self.active.discard(item.key)

    def by_key(self) -> dict[str, list[int]]:
        sequences: dict[str, list[int]] = defaultdict(list)
        for key, payload in self.seen:
            sequences[key].append(int(payload))
        return dict(sequences)


async def wait_until(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def consuming(*consumers: tuple[Queue, Handler]) -> AsyncIterator[asyncio.Event]:
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(queue.consume(TOPIC, handler, stopping=stopping), name=f"consumer-{n}")
        for n, (queue, handler) in enumerate(consumers)
    ]
    try:
        yield stopping
    finally:
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def test_publish_then_drain_delivers_every_item_once(queues: Queues) -> None:
    queue = queues()
    await queue.start()
    ids = [await queue.publish(TOPIC, f"key-{n % 7}", str(n).encode()) for n in range(40)]
    await queue.publish("outbound", "other", b"not for the inbound handler")
    assert len(set(ids)) == 40
    assert await queue.stats(TOPIC) == QueueStats(depth=40, pending=0, dead=0)
    await asyncio.sleep(0.05)
    assert 0.05 <= (await queue.stats(TOPIC)).lag_seconds < 60  # the oldest waited that long

    recorder = Recorder()
    assert await queue.drain(TOPIC, recorder) == 40
    assert sorted(int(payload) for _, payload in recorder.seen) == list(range(40))
    assert await queue.drain(TOPIC, recorder) == 0
    assert await queue.stats(TOPIC) == QueueStats(depth=0, pending=0, dead=0)
    assert (await queue.stats(TOPIC)).lag_seconds == 0.0
    assert (await queue.stats("outbound")).depth == 1


async def test_each_key_in_publish_order_with_two_consumers(queues: Queues) -> None:
    if queues.exclusive:
        pytest.skip("an exclusive queue has one consumer by definition")
    first, second = queues(), queues()
    one, two = Recorder(max_delay=0.003, name="one"), Recorder(max_delay=0.003, name="two")
    active: set[str] = set()
    overlaps: list[str] = []
    order: list[tuple[str, int]] = []

    def shared(recorder: Recorder) -> Handler:
        async def handle(item: Item) -> None:
            if item.key in active:
                overlaps.append(item.key)
            active.add(item.key)
            try:
                await recorder(item)
                order.append((item.key, int(item.payload)))
            finally:
                active.discard(item.key)

        return handle

    keys = [f"sender-{n}" for n in range(12)]
    async with consuming((first, shared(one)), (second, shared(two))):
        sequence = 0
        for _round in range(5):  # published while both consume, so partitions move meanwhile
            for _ in range(5):
                for key in keys:
                    await (first if sequence % 2 else second).publish(
                        TOPIC, key, str(sequence).encode()
                    )
                    sequence += 1
            await asyncio.sleep(0.1)
        await wait_until(lambda: len(order) == 300, within=20)

    assert overlaps == []
    published: dict[str, list[int]] = defaultdict(list)
    for n in range(300):
        published[keys[n % 12]].append(n)
    handled: dict[str, list[int]] = defaultdict(list)
    for key, n in order:
        handled[key].append(n)
    assert handled == published
    assert one.seen and two.seen, "both consumers should have had work"
    assert await first.stats(TOPIC) == QueueStats(depth=0, pending=0, dead=0)


async def test_failing_item_is_retried_then_dead_lettered(queues: Queues) -> None:
    queue = queues(max_attempts=3)
    await queue.publish(TOPIC, "bad", b"poison")
    await queue.publish(TOPIC, "bad", b"after")
    for n in range(10):
        await queue.publish(TOPIC, f"good-{n}", b"fine")
    attempts: list[int] = []
    handled: list[tuple[str, bytes]] = []

    async def handler(item: Item) -> None:
        if item.payload == b"poison":
            attempts.append(item.attempts)
            raise ValueError("cannot parse")
        handled.append((item.key, item.payload))

    assert await queue.drain(TOPIC, handler) == 3 + 1 + 10
    assert attempts == [0, 1, 2]
    assert ("bad", b"after") in handled
    assert len(handled) == 11
    dead = await queue.dead_letters(TOPIC)
    assert [(d.topic, d.key, d.payload, d.attempts) for d in dead] == [(TOPIC, "bad", b"poison", 3)]
    assert "ValueError: cannot parse" in dead[0].error
    assert await queue.stats(TOPIC) == QueueStats(depth=0, pending=0, dead=1)


async def test_poison_item_holds_back_only_its_own_key(queues: Queues) -> None:
    queues.backoff = lambda attempts: 0.2
    queue = queues(max_attempts=3)
    await queue.publish(TOPIC, "bad", b"poison")
    await queue.publish(TOPIC, "bad", b"after")
    for n in range(20):
        await queue.publish(TOPIC, f"good-{n % 10}", b"fine")
    tries: list[float] = []
    good: list[float] = []
    after: list[float] = []

    async def handler(item: Item) -> None:
        if item.payload == b"poison":
            tries.append(time.monotonic())
            raise RuntimeError("still broken")
        (after if item.payload == b"after" else good).append(time.monotonic())

    async with consuming((queue, handler)):
        await wait_until(lambda: bool(after), within=10)

    assert len(tries) == 3
    assert len(good) == 20
    assert max(good) < tries[-1], "other keys must not wait for the poison item's retries"
    assert after[0] > tries[-1], "the key's next item waits until the poison item is settled"
    assert (await queue.stats(TOPIC)).dead == 1


async def test_drain_leaves_a_key_waiting_for_its_retry_and_handles_the_rest(
    queues: Queues,
) -> None:
    queues.backoff = lambda attempts: 30.0
    queue = queues(partitions=1)  # everything in one stream, behind the failing key's entries
    for n in range(25):
        await queue.publish(TOPIC, "bad", str(n).encode())
    for n in range(5):
        await queue.publish(TOPIC, f"good-{n}", b"0")
    recorder = Recorder()

    async def handler(item: Item) -> None:
        if item.key == "bad":
            raise RuntimeError("bad")
        await recorder(item)

    assert await queue.drain(TOPIC, handler) == 6
    assert sorted(key for key, _ in recorder.seen) == [f"good-{n}" for n in range(5)]
    assert await queue.drain(TOPIC, handler) == 0
    assert (await queue.stats(TOPIC)).depth == 25


async def test_requeue_dead_puts_it_back(queues: Queues) -> None:
    queue = queues(max_attempts=2)
    await queue.publish(TOPIC, "customer-7", b"payload")

    async def failing(item: Item) -> None:
        raise RuntimeError("down")

    await queue.drain(TOPIC, failing)
    [dead] = await queue.dead_letters(TOPIC)
    assert not await queue.requeue_dead("outbound", dead.id)
    assert not await queue.requeue_dead(TOPIC, "nonsense")
    assert not await queue.requeue_dead(TOPIC, "987654")
    assert await queue.requeue_dead(TOPIC, dead.id)
    assert not await queue.requeue_dead(TOPIC, dead.id), "a dead letter is requeued once"
    assert await queue.stats(TOPIC) == QueueStats(depth=1, pending=0, dead=0)

    recorder = Recorder()
    assert await queue.drain(TOPIC, recorder) == 1
    assert recorder.seen == [("customer-7", b"payload")]
    assert await queue.dead_letters(TOPIC) == []


async def test_items_of_a_consumer_that_dies_go_to_another(queues: Queues) -> None:
    first, second = queues(lease_seconds=0.5), queues(lease_seconds=0.5)
    for n in range(3):
        await first.publish(TOPIC, "k", str(n).encode())
        await first.publish(TOPIC, "j", str(n).encode())
    entered = asyncio.Event()

    async def stuck(item: Item) -> None:
        entered.set()
        await asyncio.Event().wait()

    dying = asyncio.create_task(
        first.consume(TOPIC, stuck, stopping=asyncio.Event()), name="dying-consumer"
    )
    await asyncio.wait_for(entered.wait(), 5)
    assert (await first.stats(TOPIC)).pending >= 1
    dying.cancel()  # mid-handler, without acknowledging anything
    with contextlib.suppress(asyncio.CancelledError):
        await dying

    recorder = Recorder()
    async with consuming((second, recorder)):
        await wait_until(lambda: len(recorder.seen) == 6, within=10)
    assert recorder.by_key() == {"k": [0, 1, 2], "j": [0, 1, 2]}
    assert await second.stats(TOPIC) == QueueStats(depth=0, pending=0, dead=0)


async def test_consume_returns_soon_after_stopping(queues: Queues) -> None:
    queue = queues()
    idle = asyncio.Event()
    task = asyncio.create_task(queue.consume(TOPIC, Recorder(), stopping=idle), name="idle")
    await asyncio.sleep(0.3)
    started = time.monotonic()
    idle.set()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 1.0

    for n in range(200):
        await queue.publish(TOPIC, f"key-{n % 50}", str(n).encode())
    busy = Recorder()

    async def slow(item: Item) -> None:
        await asyncio.sleep(0.05)
        await busy(item)

    stopping = asyncio.Event()
    task = asyncio.create_task(queue.consume(TOPIC, slow, stopping=stopping), name="busy")
    await wait_until(lambda: len(busy.seen) >= 5)
    started = time.monotonic()
    stopping.set()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 1.2
    assert (await queue.stats(TOPIC)).depth == 200 - len(busy.seen) > 0


async def test_items_and_attempts_survive_reopening_the_queue(queues: Queues) -> None:
    queues.backoff = lambda attempts: 0.5
    first = queues()
    await first.start()
    for n in range(10):
        await first.publish(TOPIC, "k", str(n).encode())
    await first.publish(TOPIC, "flaky", b"0")

    async def failing(item: Item) -> None:
        raise RuntimeError("not yet")

    assert await first.drain(TOPIC, failing) == 2  # the head of each key, once
    await first.stop()
    await first.stop()

    second = queues()
    await second.start()
    await second.start()
    assert (await second.stats(TOPIC)).depth == 11
    recorder = Recorder()
    attempts: dict[tuple[str, bytes], int] = {}

    async def handler(item: Item) -> None:
        attempts[item.key, item.payload] = item.attempts
        await recorder(item)

    assert await second.drain(TOPIC, handler) == 0, "the retries are not due yet"
    await asyncio.sleep(0.55)
    assert await second.drain(TOPIC, handler) == 11
    assert recorder.by_key() == {"k": list(range(10)), "flaky": [0]}
    assert {item for item, count in attempts.items() if count} == {("k", b"0"), ("flaky", b"0")}
    assert set(attempts.values()) == {0, 1}
    assert await second.stats(TOPIC) == QueueStats(depth=0, pending=0, dead=0)


# -- Redis only --------------------------------------------------------------------------------

redis_only = pytest.mark.parametrize("queue_backend", ["redis"], indirect=True)


async def _holders(queue: RedisQueue) -> Counter[str]:
    return Counter((await queue.owners(TOPIC)).values())


@redis_only
async def test_redis_consumers_share_partitions_fairly(queues: Queues) -> None:
    first, second = queues(partitions=4), queues(partitions=4)
    assert isinstance(first, RedisQueue) and isinstance(second, RedisQueue)
    stop_second = asyncio.Event()
    async with consuming((first, Recorder())):
        await asyncio.sleep(0.5)
        assert list((await _holders(first)).values()) == [4]
        other = asyncio.create_task(
            second.consume(TOPIC, Recorder(), stopping=stop_second), name="second"
        )
        deadline = time.monotonic() + 5
        while sorted((await _holders(first)).values()) != [2, 2]:
            assert time.monotonic() < deadline, await _holders(first)
            await asyncio.sleep(0.05)
        stop_second.set()
        await asyncio.wait_for(other, 5)
        deadline = time.monotonic() + 5
        while list((await _holders(first)).values()) != [4]:
            assert time.monotonic() < deadline, await _holders(first)
            await asyncio.sleep(0.05)


@redis_only
async def test_redis_consumer_killed_mid_item_is_recovered(queues: Queues) -> None:
    config = queues.config()
    for n in range(3):
        await queues().publish(TOPIC, "k", str(n).encode())
    script = (
        "import asyncio, sys\n"
        "from redis.asyncio import Redis\n"
        "from storage.config import QueueConfig\n"
        "from storage.queue.redis import RedisQueue\n"
        "async def main():\n"
        "    queue = RedisQueue(Redis.from_url(sys.argv[1]),\n"
        "                       QueueConfig.model_validate_json(sys.argv[2]))\n"
        "    async def handler(item):\n"
        "        print('took', item.payload.decode(), flush=True)\n"
        "        await asyncio.sleep(3600)\n"
        "    await queue.consume('inbound', handler, stopping=asyncio.Event())\n"
        "asyncio.run(main())\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        REDIS_URL,
        config.model_dump_json(),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 15)
        assert line.split() == [b"took", b"0"]
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()

    recorder = Recorder()
    async with consuming((queues(), recorder)):
        await wait_until(lambda: len(recorder.seen) == 3, within=10)
    assert recorder.by_key() == {"k": [0, 1, 2]}


@redis_only
async def test_redis_entry_stranded_by_a_lost_owner_is_recovered(queues: Queues) -> None:
    """An old owner's read that lands after the new owner's pass over pending entries leaves an
    entry pending that no lane knows of; it is claimed back once idle for a lease."""
    queue = queues(partitions=1, lease_seconds=0.6)
    assert isinstance(queue, RedisQueue)
    recorder = Recorder()
    async with consuming((queue, recorder)):
        await asyncio.sleep(0.3)
        stream = queue.key(TOPIC, 0)
        pipe = queue._client.pipeline(transaction=True)
        pipe.xadd(stream, {"key": "k", "payload": b"1"})
        pipe.xreadgroup(GROUP, OWNER, {stream: ">"}, count=1)  # the old owner's late read
        await pipe.execute()
        await queue.publish(TOPIC, "j", b"2")
        await wait_until(lambda: ("j", b"2") in recorder.seen, within=5)
        assert ("k", b"1") not in recorder.seen
        await wait_until(lambda: ("k", b"1") in recorder.seen, within=10)
    assert await queue.stats(TOPIC) == QueueStats(depth=0, pending=0, dead=0)
