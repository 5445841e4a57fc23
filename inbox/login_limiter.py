"""Slows password guessing: too many failed logins for one address from one client, or for any
addresses from one client, → 429 until the oldest of those failures leaves the window."""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Protocol

from redis.asyncio import Redis


class _FailureWindow:
    """Recent failure times per key: at most `limit` per key (all a block decision needs) and
    at most `capacity` keys, forgetting the ones that failed least recently first, so a flood of
    made-up addresses costs bounded memory and cannot wipe anyone else's count."""

    def __init__(
        self, *, limit: int, window: float, capacity: int, clock: Callable[[], float]
    ) -> None:
        self._limit = limit
        self._window = window
        self._capacity = capacity
        self._clock = clock
        self._failures: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def retry_after(self, key: Hashable) -> float | None:
        failures = self._failures.get(key)
        if failures is None or len(failures) < self._limit:
            return None
        wait = failures[0] + self._window - self._clock()
        return wait if wait > 0 else None

    def add(self, key: Hashable) -> None:
        failures = self._failures.get(key)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=self._limit)
            while len(self._failures) > self._capacity:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        failures.append(self._clock())

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def take_back(self, key: Hashable) -> None:
        """Remove the latest failure of `key` (a try counted in advance that succeeded)."""
        failures = self._failures.get(key)
        if failures:
            failures.pop()

    def __len__(self) -> int:
        return len(self._failures)


def client_key(client: str) -> str:
    """One key per client: an IPv6 client usually holds a whole /64, so the /64 is the client."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class LoginLimiter:
    """Two limits on failed logins: `attempts` for one (client, address) pair, and
    `client_attempts` for one client whatever the addresses (one password sprayed over many
    accounts). A success clears the pair's count but not the client's: otherwise one valid
    account would let a client guess at all the others.

    A try is counted as failed before its password is checked (`failed`) and taken back when it
    succeeds (`succeeded`): the check takes long enough that concurrent guesses would otherwise
    all pass the limit before the first of them failed."""

    def __init__(
        self,
        *,
        attempts: int = 5,
        client_attempts: int = 20,
        window_seconds: float = 900.0,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._by_pair = _FailureWindow(
            limit=attempts, window=window_seconds, capacity=capacity, clock=clock
        )
        self._by_client = _FailureWindow(
            limit=client_attempts, window=window_seconds, capacity=capacity, clock=clock
        )

    def retry_after(self, client: str, email: str) -> float | None:
        """Seconds until this client may try this address again, or `None` when it may now."""
        waits = [
            self._by_pair.retry_after((client_key(client), email.lower())),
            self._by_client.retry_after(client_key(client)),
        ]
        return max((wait for wait in waits if wait is not None), default=None)

    def failed(self, client: str, email: str) -> None:
        """Count a try as failed; called before its password is checked."""
        self._by_pair.add((client_key(client), email.lower()))
        self._by_client.add(client_key(client))

    def succeeded(self, client: str, email: str) -> None:
        """The try counted by `failed` logged in: take it back."""
        self._by_pair.forget((client_key(client), email.lower()))
        self._by_client.take_back(client_key(client))

    @property
    def tracked(self) -> int:
        """How many (client, address) pairs and clients are remembered."""
        return len(self._by_pair) + len(self._by_client)


class LoginLimits(Protocol):
    """What the login handler asks: `LoginLimiter` in one process, `RedisLoginLimiter` shared
    by every web process at scale (a client spreading guesses over processes is still counted
    once)."""

    async def retry_after(self, client: str, email: str) -> float | None: ...

    async def failed(self, client: str, email: str) -> None: ...

    async def succeeded(self, client: str, email: str) -> None: ...


class InProcessLoginLimits:
    """`LoginLimiter` behind the `LoginLimits` interface (the embedded default)."""

    def __init__(self, limiter: LoginLimiter | None = None) -> None:
        self.limiter = limiter or LoginLimiter()

    async def retry_after(self, client: str, email: str) -> float | None:
        return self.limiter.retry_after(client, email)

    async def failed(self, client: str, email: str) -> None:
        self.limiter.failed(client, email)

    async def succeeded(self, client: str, email: str) -> None:
        self.limiter.succeeded(client, email)


_RETRY_AFTER = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait = -1
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local limit = tonumber(ARGV[2 + i])
  local nth = redis.call('ZREVRANGE', key, limit - 1, limit - 1, 'WITHSCORES')
  if nth[2] then
    local until_ = tonumber(nth[2]) + window - now
    if until_ > wait then wait = until_ end
  end
end
return tostring(wait)
"""


class RedisLoginLimiter:
    """The same two limits as `LoginLimiter`, kept in Redis: a sorted set of failure times per
    (client, address) and per client, each expiring with the window."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        *,
        attempts: int = 5,
        client_attempts: int = 20,
        window_seconds: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = f"{prefix}:login"
        self._attempts = attempts
        self._client_attempts = client_attempts
        self._window = window_seconds
        self._clock = clock
        self._retry_after = client.register_script(_RETRY_AFTER)

    def _keys(self, client: str, email: str) -> tuple[str, str]:
        who = client_key(client)
        return f"{self._prefix}:pair:{who}:{email.lower()}", f"{self._prefix}:client:{who}"

    async def retry_after(self, client: str, email: str) -> float | None:
        pair, by_client = self._keys(client, email)
        wait = float(
            await self._retry_after(
                keys=[pair, by_client],
                args=[self._clock(), self._window, self._attempts, self._client_attempts],
            )
        )
        return wait if wait > 0 else None

    async def failed(self, client: str, email: str) -> None:
        now = self._clock()
        async with self._client.pipeline(transaction=True) as pipe:
            for key in self._keys(client, email):
                pipe.zadd(key, {f"{now}:{secrets.token_hex(4)}": now})
                pipe.expire(key, int(self._window) + 1)
            await pipe.execute()

    async def succeeded(self, client: str, email: str) -> None:
        pair, by_client = self._keys(client, email)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(pair)
            pipe.zpopmax(by_client)
            await pipe.execute()
