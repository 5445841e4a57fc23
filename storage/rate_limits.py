"""Sliding-window limits kept in Redis, so that every web process counts against the same
window (a visitor or an address spreading messages over processes is counted once)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from redis.asyncio import Redis

_COUNT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(math.max(0.1, tonumber(oldest[2]) + window - now))
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return '0'
"""


class RedisWindow:
    """At most `limit` events per `seconds` for each key, counted in one sorted set a key."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        limit: int,
        seconds: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._prefix = prefix
        self._limit = limit
        self._seconds = seconds
        self._clock = clock
        self._count = client.register_script(_COUNT)

    async def retry_after(self, key: str) -> float:
        """0 and the event counted if it is within the limit; else seconds until it would be."""
        now = self._clock()
        wait = await self._count(
            keys=[f"{self._prefix}:{key}"],
            args=[now, self._seconds, self._limit, f"{now}:{secrets.token_hex(4)}"],
        )
        return float(wait)
