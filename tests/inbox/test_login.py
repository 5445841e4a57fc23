"""Logging in: password guessing is limited per client as well as per address, and checking a
password (argon2, deliberately slow) never holds up the other requests."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import aiohttp
import pytest
from argon2 import PasswordHasher

from inbox import accounts
from inbox.login_limiter import LoginLimiter
from tests.fixtures.stack import PASSWORD, Stack


class HeldHasher(PasswordHasher):
    """Real argon2 at a low cost; with `hold` set, each hash or check says when it starts and
    ends, and takes at least `hold` seconds, long enough to see what the server does meanwhile."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.hold = 0.0
        self.started = threading.Event()
        self.finished = threading.Event()

    def _held(self) -> None:
        if self.hold:
            self.started.set()
            time.sleep(self.hold)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._held()
        try:
            return super().hash(password, salt=salt)
        finally:
            self.finished.set()

    def verify(self, hash: str | bytes, password: str | bytes) -> Any:
        self._held()
        try:
            return super().verify(hash, password)
        finally:
            self.finished.set()


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> HeldHasher:
    """Argon2 at its real cost takes 0.2 s a hash; these tests fail logins dozens of times."""
    held = HeldHasher()
    monkeypatch.setattr(accounts, "_hasher", held)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", held.hash("not a password anyone has"))
    return held


async def login(
    stack: Stack, email: str, password: str, http: aiohttp.ClientSession | None = None
) -> tuple[int, str | None]:
    """The answer's status and its Retry-After header."""
    async with (http or stack.http).post(
        stack.base + "/api/v1/auth/login", json={"email": email, "password": password}
    ) as response:
        await response.read()
        return response.status, response.headers.get("Retry-After")


async def test_guessing_over_many_addresses_from_one_client_gets_429(
    stack: Stack, hasher: HeldHasher
) -> None:
    await stack.add_agent("ali@example.com", online=False)
    sprayed = [await login(stack, f"agent{i}@example.com", "Winter2024!") for i in range(19)]
    assert sprayed == [(401, None)] * 19
    # Logging in does not wipe the client's count: one valid account is no key to the others.
    assert await login(stack, "ali@example.com", PASSWORD) == (200, None)
    assert await login(stack, "agent19@example.com", "Winter2024!") == (401, None)

    status, retry_after = await login(stack, "ali@example.com", PASSWORD)
    assert status == 429
    assert retry_after is not None and 850 <= int(retry_after) <= 900

    # Another client is not locked out by this one.
    other_client = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    )
    async with other_client:
        assert await login(stack, "ali@example.com", PASSWORD, other_client) == (200, None)


async def test_concurrent_guesses_cannot_slip_past_the_limit(
    stack: Stack, hasher: HeldHasher
) -> None:
    await stack.add_agent("ali@example.com", online=False)

    answers = await asyncio.gather(
        *(login(stack, "ali@example.com", f"guess {i}") for i in range(30))
    )

    statuses = sorted(status for status, _ in answers)
    assert statuses == [401] * 5 + [429] * 25


async def test_other_requests_are_answered_while_a_login_checks_its_password(
    stack: Stack, hasher: HeldHasher
) -> None:
    await stack.add_agent("ali@example.com", online=False)
    hasher.hold = 1.0
    hasher.finished.clear()
    attempt = asyncio.create_task(login(stack, "ali@example.com", "wrong password"))
    assert await asyncio.to_thread(hasher.started.wait, 5)

    async with stack.http.get(stack.base + "/healthz") as response:
        assert response.status == 200
    assert not hasher.finished.is_set()  # answered while the check was still running
    assert await attempt == (401, None)


async def test_other_requests_are_answered_while_an_agent_is_created(
    stack: Stack, hasher: HeldHasher
) -> None:
    admin = await stack.add_agent("boss@example.com", role="admin", online=False)
    hasher.hold = 1.0
    hasher.finished.clear()
    creation = asyncio.create_task(
        admin.send("POST", "/api/v1/agents", {"email": "sara@example.com", "password": PASSWORD})
    )
    assert await asyncio.to_thread(hasher.started.wait, 5)

    async with stack.http.get(stack.base + "/healthz") as response:
        assert response.status == 200
    assert not hasher.finished.is_set()
    status, _ = await creation
    assert status == 201


def test_the_limiter_remembers_a_bounded_number_of_clients_and_addresses() -> None:
    now = [0.0]
    limiter = LoginLimiter(attempts=2, client_attempts=3, capacity=10, clock=lambda: now[0])
    limiter.failed("10.0.0.1", "ali@example.com")
    limiter.failed("10.0.0.1", "ali@example.com")
    assert limiter.retry_after("10.0.0.1", "ali@example.com") == 900.0

    for n in range(1000):  # a flood from many clients for made-up addresses
        limiter.failed(f"10.1.{n // 256}.{n % 256}", f"user{n}@example.com")

    assert limiter.tracked <= 20
    # The flood pushed out the oldest entries only; the newest clients are still counted.
    limiter.failed("10.1.3.231", "x@example.com")
    limiter.failed("10.1.3.231", "y@example.com")
    assert limiter.retry_after("10.1.3.231", "z@example.com") == 900.0
    now[0] = 900.0
    assert limiter.retry_after("10.1.3.231", "z@example.com") is None


def test_an_ipv6_client_is_its_whole_64_prefix() -> None:
    limiter = LoginLimiter(attempts=5, client_attempts=3)
    for host in ("2001:db8::1", "2001:db8::2", "2001:db8::ffff:3"):
        limiter.failed(host, f"{host}@example.com")

    assert limiter.retry_after("2001:db8::abcd", "ali@example.com") is not None
    assert limiter.retry_after("2001:db8:0:1::1", "ali@example.com") is None
