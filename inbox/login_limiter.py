"""Slows password guessing: too many failed logins for one address from one client, or for any
addresses from one client, → 429 until the oldest of those failures leaves the window."""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable


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
