"""Failed logins counted in Redis, as every web process at scale shares them: guesses spread
over two processes are counted together, a success clears its own count only, and the window
passes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from redis.asyncio import Redis

from inbox.login_limiter import RedisLoginLimiter
from tests.fixtures.services import REDIS_URL


@pytest_asyncio.fixture
async def client(redis_prefix: str) -> AsyncIterator[Redis]:
    redis = Redis.from_url(REDIS_URL)
    yield redis
    await redis.aclose()


async def test_guesses_through_two_web_processes_are_counted_together(
    client: Redis, redis_prefix: str
) -> None:
    now = [1_000_000.0]
    web_a, web_b = (
        RedisLoginLimiter(client, redis_prefix, attempts=3, client_attempts=5, clock=lambda: now[0])
        for _ in range(2)
    )
    for limiter in (web_a, web_b, web_a):
        assert await limiter.retry_after("203.0.113.7", "sara@example.com") is None
        await limiter.failed("203.0.113.7", "sara@example.com")
    assert await web_b.retry_after("203.0.113.7", "Sara@Example.com") == 900.0
    # Another client for the same address is not blocked; the same client for another one is
    # not yet (its own limit is 5).
    assert await web_b.retry_after("198.51.100.1", "sara@example.com") is None
    assert await web_b.retry_after("203.0.113.7", "ali@example.com") is None
    now[0] += 600
    assert await web_a.retry_after("203.0.113.7", "sara@example.com") == 300.0
    now[0] += 300
    assert await web_a.retry_after("203.0.113.7", "sara@example.com") is None


async def test_password_spraying_hits_the_client_limit_and_a_success_clears_only_its_pair(
    client: Redis, redis_prefix: str
) -> None:
    now = [5_000.0]
    limiter = RedisLoginLimiter(
        client, redis_prefix, attempts=3, client_attempts=4, clock=lambda: now[0]
    )
    for n in range(4):
        now[0] += 1
        await limiter.failed("2001:db8::1", f"user{n}@example.com")
    # The same /64 is the same client.
    wait = await limiter.retry_after("2001:db8::ffff", "someone@example.com")
    assert wait is not None and 895 < wait <= 900
    await limiter.failed("2001:db8::1", "user0@example.com")  # counted before the check...
    await limiter.succeeded("2001:db8::1", "user0@example.com")  # ...and taken back
    assert await limiter.retry_after("2001:db8::1", "user0@example.com") is not None
    assert await client.zcard(f"{redis_prefix}:login:client:2001:db8::/64") == 4
