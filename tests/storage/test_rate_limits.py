"""Message limits shared through Redis: two web processes counting one visitor's messages
count them together, and the window slides."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from redis.asyncio import Redis

from storage.rate_limits import RedisWindow
from tests.fixtures.services import REDIS_URL


@pytest_asyncio.fixture
async def client(redis_prefix: str) -> AsyncIterator[Redis]:
    redis = Redis.from_url(REDIS_URL)
    yield redis
    await redis.aclose()


async def test_two_processes_share_one_window(client: Redis, redis_prefix: str) -> None:
    now = [1_000.0]
    web_a, web_b = (
        RedisWindow(
            client, f"{redis_prefix}:rate:webchat:site:visitor", 3, 60.0, clock=lambda: now[0]
        )
        for _ in range(2)
    )
    for window in (web_a, web_b, web_a):
        assert await window.retry_after("visitor-1") == 0.0
        now[0] += 1
    assert await web_b.retry_after("visitor-1") == 57.0  # the first of the three leaves at 1060
    assert await web_a.retry_after("visitor-2") == 0.0  # another visitor has a window of its own
    now[0] = 1_060.5
    assert await web_b.retry_after("visitor-1") == 0.0
    # Refusals are not counted: the window holds the three that went through.
    assert await client.zcard(f"{redis_prefix}:rate:webchat:site:visitor:visitor-1") == 3
