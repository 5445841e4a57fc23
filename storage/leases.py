"""Leadership through a Redis lease: exactly one process at a time does a job (reads one
mailbox, polls one Telegram bot); the others stand by and take over when it stops renewing.

The lease is one key, `SET NX PX`: held while its value is our token, renewed (`PEXPIRE`) only
while it still is, released only by its holder. A leader that cannot renew stops before its
lease can have expired elsewhere (`Leadership` gives up `margin` seconds early), so two
processes never poll at once: the standby takes over within `ttl` of the leader's death."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_DOWN = (RedisError, OSError)


class RedisLease:
    """One named lease; `token` tells this holder apart from every other process."""

    def __init__(self, client: Redis, key: str, *, ttl: float) -> None:
        self.key = key
        self.ttl = ttl
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        """Who holds it, for an operator reading the key: host, process id, and a random part."""
        self._client = client
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def acquire(self) -> bool:
        return bool(await self._client.set(self.key, self.token, nx=True, px=int(self.ttl * 1000)))

    async def renew(self) -> bool:
        """Whether we still hold it (and now for another `ttl`)."""
        return bool(await self._renew(keys=[self.key], args=[self.token, int(self.ttl * 1000)]))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.token])

    async def holder(self) -> str | None:
        value = await self._client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value


class Leadership:
    """Runs `lead()` while this process holds the lease and `follow()` when it loses it.

    A lease we cannot renew (Redis down, or someone else holds it) ends our turn: at once when
    someone else holds it, else once `ttl - margin` has passed since the last renewal, so that
    we stop before the lease can expire and another process start."""

    def __init__(
        self,
        lease: RedisLease,
        lead: Callable[[], Awaitable[None]],
        follow: Callable[[], Awaitable[None]],
        *,
        margin: float | None = None,
    ) -> None:
        self.lease = lease
        self._lead = lead
        self._follow = follow
        self._margin = margin if margin is not None else lease.ttl / 3
        self.leading = False

    async def run(self, stopping: asyncio.Event) -> None:
        interval = self.lease.ttl / 3
        try:
            while not stopping.is_set():
                try:
                    if await self.lease.acquire():
                        await self._hold(stopping, interval)
                except _DOWN as exc:
                    logger.warning("lease %s: Redis unavailable (%s)", self.lease.key, exc)
                except Exception:
                    logger.exception("lease %s: the leader's work failed", self.lease.key)
                if self.leading and not stopping.is_set():
                    await self._step_down()
                    with contextlib.suppress(*_DOWN):
                        await self.lease.release()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), interval)
        finally:
            if self.leading:
                await self._step_down()
                with contextlib.suppress(*_DOWN):
                    await self.lease.release()

    async def _hold(self, stopping: asyncio.Event, interval: float) -> None:
        renewed = time.monotonic()
        logger.info("lease %s: leading", self.lease.key)
        self.leading = True
        await self._lead()
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)
            if stopping.is_set():
                return  # `run` steps down and releases
            try:
                if not await self.lease.renew():
                    logger.warning("lease %s: taken by another process", self.lease.key)
                    break
                renewed = time.monotonic()
            except _DOWN as exc:
                if time.monotonic() - renewed >= self.lease.ttl - self._margin:
                    logger.warning(
                        "lease %s: could not renew (%s); standing by", self.lease.key, exc
                    )
                    break
        await self._step_down()

    async def _step_down(self) -> None:
        self.leading = False
        try:
            await self._follow()
        except Exception:
            logger.exception("lease %s: stopping the leader's work failed", self.lease.key)
