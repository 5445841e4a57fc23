"""Poller leadership on the real Redis: one leader at a time, a standby takes over within the
lease when the leader dies, and a leader that cannot renew stops before its lease runs out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest_asyncio
from redis.asyncio import Redis

from storage.leases import Leadership, RedisLease
from tests.fixtures.services import REDIS_URL
from tests.fixtures.stack import eventually

TTL = 1.0


@pytest_asyncio.fixture
async def client(redis_prefix: str) -> AsyncIterator[Redis]:
    redis = Redis.from_url(REDIS_URL)
    yield redis
    await redis.aclose()


class Poller:
    """Records when it polls, as a mailbox reader would."""

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name, self.log, self.polling = name, log, False

    async def start(self) -> None:
        self.polling = True
        self.log.append((self.name, "start"))

    async def stop(self) -> None:
        self.polling = False
        self.log.append((self.name, "stop"))


def _leader(client: Redis, key: str, poller: Poller) -> Leadership:
    return Leadership(RedisLease(client, key, ttl=TTL), poller.start, poller.stop)


async def test_one_leader_at_a_time_and_the_standby_takes_over(
    client: Redis, redis_prefix: str
) -> None:
    log: list[tuple[str, str]] = []
    first, second = Poller("first", log), Poller("second", log)
    key = f"{redis_prefix}:poller:support"
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(_leader(client, key, first).run(stop_first))
    await eventually(lambda: _true(first.polling))
    b = asyncio.create_task(_leader(client, key, second).run(stop_second))
    await asyncio.sleep(TTL * 1.5)  # the standby tried several times
    assert first.polling and not second.polling
    # The leader stops cleanly: it releases the lease, the standby leads at once.
    stop_first.set()
    await a
    await eventually(lambda: _true(second.polling), timeout=TTL * 2)
    assert log == [("first", "start"), ("first", "stop"), ("second", "start")]
    stop_second.set()
    await b
    assert await client.exists(key) == 0


async def test_a_dead_leaders_lease_expires_and_the_standby_takes_over(
    client: Redis, redis_prefix: str
) -> None:
    log: list[tuple[str, str]] = []
    first, second = Poller("first", log), Poller("second", log)
    key = f"{redis_prefix}:poller:telegram"
    a = asyncio.create_task(_leader(client, key, first).run(asyncio.Event()))
    await eventually(lambda: _true(first.polling))
    stopping = asyncio.Event()
    b = asyncio.create_task(_leader(client, key, second).run(stopping))
    # SIGKILL, as far as Redis can tell: the leader stops renewing without releasing.
    a.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await a
    died = asyncio.get_running_loop().time()
    await eventually(lambda: _true(second.polling), timeout=TTL * 3)
    assert asyncio.get_running_loop().time() - died <= TTL * 1.6
    stopping.set()
    await b


async def test_a_leader_whose_lease_is_taken_stops_polling(
    client: Redis, redis_prefix: str
) -> None:
    log: list[tuple[str, str]] = []
    poller = Poller("only", log)
    key = f"{redis_prefix}:poller:mail"
    stopping = asyncio.Event()
    task = asyncio.create_task(_leader(client, key, poller).run(stopping))
    await eventually(lambda: _true(poller.polling))
    await client.set(key, "someone-else")  # an operator moved it, or it expired and was taken
    await eventually(lambda: _true(not poller.polling), timeout=TTL * 2)
    assert await client.get(key) == b"someone-else"  # never released what is not ours
    stopping.set()
    await task


async def test_a_leader_that_cannot_reach_redis_stops_before_its_lease_ends(
    redis_prefix: str,
) -> None:
    log: list[tuple[str, str]] = []
    poller = Poller("cut-off", log)
    key = f"{redis_prefix}:poller:cut"
    client = Redis.from_url(REDIS_URL)
    lease = RedisLease(client, key, ttl=TTL)
    stopping = asyncio.Event()
    task = asyncio.create_task(Leadership(lease, poller.start, poller.stop).run(stopping))
    await eventually(lambda: _true(poller.polling))
    acquired = asyncio.get_running_loop().time()

    async def down(*_args: object, **_kwargs: object) -> bool:
        raise ConnectionError("Redis is down")

    lease.renew = down  # type: ignore[method-assign]
    await eventually(lambda: _true(not poller.polling), timeout=TTL * 2)
    # Stopped while the lease (renewed at most TTL/3 before) could still be ours.
    assert asyncio.get_running_loop().time() - acquired < TTL * 1.4
    stopping.set()
    await task
    await client.aclose()


async def _true(value: bool) -> bool:
    return value
