"""Running at scale, as an operator would: separate `pishkhan serve --role web|router|poller`
OS processes on the machine's PostgreSQL and Redis. Messages posted to both web processes,
delivered by a (fake) Telegram bot and arriving in a Dovecot mailbox are stored exactly once, in
per-sender order; an agent connected to one web process sees messages that entered through the
other; a router worker SIGKILLed mid-burst loses nothing and doubles nothing; killing the poller
that reads the mailbox hands it to the standby within the lease; a web process killed under its
agent, who reconnects elsewhere and catches up; Redis restarting and PostgreSQL refusing
connections lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.config import StorageConfig
from storage.db import create_engine, session_factory
from storage.models import Message
from tests.fixtures.mail import (
    PASSWORD,
    Dovecot,
    SmtpServer,
    customer_mail,
    dovecot_server,  # noqa: F401 - the `dovecot` fixture
    smtp_recorder,  # noqa: F401 - the `smtp_server` fixture
)
from tests.fixtures.services import PG_URL, REDIS_URL, require, unique
from tests.fixtures.stack import eventually
from tests.fixtures.telegram_api import TOKEN, FakeTelegram, fake_telegram, message

REPO = Path(__file__).resolve().parents[2]
_READY = re.compile(r"Pishkhan is serving on (http://\S+)")
LEASE = 2.0
_REDIS_DOWN = (RedisError, OSError)
AGENT = "sara@example.com"


@dataclass
class Process:
    role: str
    process: asyncio.subprocess.Process
    url: str = ""

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.kill()
                await self.process.wait()


@dataclass
class Cluster:
    config: Path
    storage: StorageConfig
    workdir: Path
    prefix: str
    database: str
    processes: list[Process] = field(default_factory=list)

    async def cli(self, *args: str, stdin: str | None = None) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "inbox.cli",
            "--config",
            str(self.config),
            "--log-level",
            "WARNING",
            *args,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        assert process.returncode == 0, err.decode()
        return out.decode()

    async def start(self, role: str) -> Process:
        log = self.workdir / f"{role}-{len(self.processes)}.log"
        with log.open("ab") as errors:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "inbox.cli",
                "--config",
                str(self.config),
                "serve",
                "--role",
                role,
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
                start_new_session=True,
            )
        started = Process(role, process)
        self.processes.append(started)
        assert process.stdout is not None
        async with asyncio.timeout(60):
            while line := await process.stdout.readline():
                if match := _READY.search(line.decode()):
                    started.url = match.group(1)
                    return started
        raise AssertionError(f"{role} exited: {log.read_text()[-2000:]}")

    async def stored(self) -> list[tuple[str, str | None, int]]:
        """(channel, external id, conversation id) of every customer message, in id order."""
        engine = create_engine(self.storage)
        try:
            async with session_factory(engine)() as session:
                rows = await session.execute(
                    select(Message.channel, Message.external_id, Message.conversation_id)
                    .where(Message.direction == "in")
                    .order_by(Message.id)
                )
                return [(r[0], r[1], r[2]) for r in rows]
        finally:
            await engine.dispose()


@pytest_asyncio.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with fake_telegram() as fake:
        yield fake


@asynccontextmanager
async def running_cluster(
    tmp_path: Path, redis_url: str, channels: list[dict[str, Any]]
) -> AsyncIterator[Cluster]:
    """A database of its own (so that it can be made to refuse connections), a key prefix of
    its own on `redis_url`, migrated, with one agent; the processes are the test's to start."""
    require("PostgreSQL", "127.0.0.1", 5432)
    database, prefix = unique("pk_scale"), unique("pishkhan-scale")
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{database}"'))
    url = PG_URL.rsplit("/", 1)[0] + "/" + database
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "server": {"host": "127.0.0.1", "port": 0},
                "storage": {"url": url},
                "queue": {
                    "url": redis_url,
                    "prefix": prefix,
                    "partitions": 4,
                    "lease_seconds": 3,
                    "poller_lease_seconds": LEASE,
                },
                "channels": channels,
            }
        )
    )
    found = Cluster(config, StorageConfig(url=url), tmp_path, prefix, database)
    try:
        await found.cli("migrate")
        await found.cli("agent", "add", AGENT, "--password-stdin", stdin="a long password 1\n")
        yield found
    finally:
        await asyncio.gather(*(p.stop() for p in found.processes))
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{database}" WITH (FORCE)'))
        await admin.dispose()
        client = Redis.from_url(redis_url)
        with contextlib.suppress(*_REDIS_DOWN):
            keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
            if keys:
                await client.delete(*keys)
        await client.aclose()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> str:
    name = unique("scale")
    dovecot.create("support", name)
    return name


@pytest_asyncio.fixture
async def cluster(
    tmp_path: Path,
    telegram: FakeTelegram,
    dovecot: Dovecot,
    smtp_server: SmtpServer,
    mailbox: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Cluster]:
    require("Redis", "127.0.0.1", 6379)
    monkeypatch.setenv("PISHKHAN_SCALE_TELEGRAM_TOKEN", TOKEN)  # the processes inherit it
    monkeypatch.setenv("PISHKHAN_SCALE_MAIL_PASSWORD", PASSWORD)
    channels = [
        {"type": "webform", "name": "contact"},
        {
            "type": "email",
            "name": "support",
            "address": "support@pishkhan.test",
            "imap_host": "127.0.0.1",
            "imap_port": dovecot.port,
            "imap_security": "none",
            "imap_username": "support",
            "imap_password": "${PISHKHAN_SCALE_MAIL_PASSWORD}",
            "mailbox": mailbox,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_server.port,
            "smtp_security": "none",
            "timeout_seconds": 5,
        },
        {
            "type": "telegram",
            "name": "tg",
            "token": "${PISHKHAN_SCALE_TELEGRAM_TOKEN}",
            "base_url": telegram.base_url,
            "poll_timeout_seconds": 1,
        },
    ]
    async with running_cluster(tmp_path, REDIS_URL, channels) as found:
        yield found


async def _post(http: aiohttp.ClientSession, base: str, sender: int, n: int) -> None:
    form = {
        "name": f"مشتری {sender}",
        "email": f"customer{sender}@example.com",
        "message": f"پیام {n} از مشتری {sender}",
    }
    async with http.post(f"{base}/channels/webform/contact", data=form) as response:
        assert response.status == 202, await response.text()


async def _mail(dovecot: Dovecot, mailbox: str, n: int) -> None:
    raw = customer_mail(
        sender=f"reader{n}@example.com",
        subject=f"نامه {n}",
        body=f"سلام، این نامه شماره {n} است.",
        message_id=f"<scale-{n}@mail.example.com>",
    )
    await asyncio.to_thread(dovecot.append, "support", raw, mailbox)


@pytest.mark.timeout(240)
async def test_web_router_and_poller_processes_share_the_work(
    cluster: Cluster, telegram: FakeTelegram, dovecot: Dovecot, mailbox: str
) -> None:
    web_a, web_b = await cluster.start("web"), await cluster.start("web")
    routers = [await cluster.start("router"), await cluster.start("router")]
    pollers = [await cluster.start("poller"), await cluster.start("poller")]
    token = (await cluster.cli("agent", "token", AGENT)).strip()
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.put(
            web_a.url + "/api/v1/me/presence", json={"presence": "online"}, headers=auth
        ) as response:
            assert response.status == 200
        # The agent's browser is connected to web A only.
        seen: list[str] = []
        seen_ids: list[int] = []
        ws = await http.ws_connect(
            web_a.url.replace("http", "ws", 1) + "/api/v1/events", headers=auth
        )

        async def read() -> None:
            async for frame in ws:
                event = json.loads(frame.data)
                if event["type"] == "message.created":
                    seen.append(event["data"]["message"]["text"])
                    seen_ids.append(int(event["id"]))

        reader = asyncio.create_task(read())
        try:
            # 10 web-form customers write 6 messages each, alternately through web A and B,
            # one after another per customer; 3 Telegram chats write 5 each.
            async def customer(sender: int) -> None:
                for n in range(6):
                    await _post(http, (web_a, web_b)[n % 2].url, sender, n)

            for chat in range(3):
                for n in range(5):
                    telegram.push(
                        {"message": message(900 + chat, n + 1, text=f"تلگرام {chat}-{n}")}
                    )
            for n in range(5):
                await _mail(dovecot, mailbox, n)
            bursts = asyncio.gather(*(customer(s) for s in range(10)))
            await asyncio.sleep(0.3)
            routers[0].kill()  # SIGKILL a router worker mid-burst
            await bursts
            rows = await eventually(lambda: _count(cluster, 80), timeout=60, interval=0.3)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await ws.close()

        keys = [(channel, external) for channel, external, _ in rows]
        assert len(keys) == len(set(keys)) == 80  # exactly once
        # Per sender in order: a customer's messages are stored in the order they were sent.
        engine = create_engine(cluster.storage)
        async with session_factory(engine)() as session:
            texts = list(
                await session.scalars(
                    select(Message.text).where(Message.direction == "in").order_by(Message.id)
                )
            )
        await engine.dispose()
        for sender in range(10):
            mine = [t for t in texts if t.endswith(f"از مشتری {sender}")]
            assert mine == [f"پیام {n} از مشتری {sender}" for n in range(6)]
        for chat in range(3):
            mine = [t for t in texts if t.startswith(f"تلگرام {chat}-")]
            assert mine == [f"تلگرام {chat}-{n}" for n in range(5)]
        # Posted through web B, seen live on web A's stream.
        assert any(t.startswith("پیام 1 ") for t in seen), seen[:5]

        # Two poller processes, one reading the bot at a time (the other stands by).
        assert [c for c in telegram.calls if c.method == "getUpdates"]
        assert telegram.most_polling_at_once == 1
        # Each mailbox and bot has exactly one leader among the pollers.
        leading = {"support": 0, "tg": 0}
        for poller in pollers:
            async with http.get(poller.url + "/metrics") as response:
                metrics = await response.text()
            for name in leading:
                leading[name] += f'pishkhan_poller_leading{{channel="{name}"}} 1.0' in metrics
        assert leading == {"support": 1, "tg": 1}
        # The poller reading the mailbox dies; the standby takes it (and the bot, if the dead
        # one had it too) within the lease.
        leader = await _leader(cluster, "support")
        next(p for p in pollers if p.process.pid == leader).kill()
        telegram.push({"message": message(950, 1, text="بعد از خاموشی")})
        for n in range(5, 8):  # and mail arrives while the mailbox changes hands
            await _mail(dovecot, mailbox, n)
        rows = await eventually(lambda: _count(cluster, 84), timeout=LEASE * 8, interval=0.3)
        keys = [(channel, external) for channel, external, _ in rows]
        assert len(keys) == len(set(keys)) == 84  # no mail missed or fetched twice
        assert ("tg", "950:1") in keys
        assert {k for k in keys if k[0] == "support"} == {
            ("support", f"scale-{n}@mail.example.com") for n in range(8)
        }

        # What operators read: every process answers /healthz and /metrics.
        standby = next(p for p in pollers if p.process.pid != leader)
        for process in (web_a, routers[1], standby):
            async with http.get(process.url + "/healthz") as response:
                assert response.status == 200, process.role
        async with http.get(standby.url + "/metrics") as response:
            metrics = await response.text()
        assert 'pishkhan_poller_leading{channel="tg"} 1.0' in metrics
        assert 'pishkhan_poller_leading{channel="support"} 1.0' in metrics
        async with http.get(web_a.url + "/metrics") as response:
            text_ = await response.text()
        assert "pishkhan_event_fanout_connected 1.0" in text_
        assert 'pishkhan_queue_lag_seconds{topic="inbound"}' in text_

        # Web A dies; customers keep writing through web B; the agent's browser reconnects to
        # web B with since= and catches up on what it missed.
        web_a.kill()
        for sender in (20, 21):
            await _post(http, web_b.url, sender, 0)
        await eventually(lambda: _count(cluster, 86), timeout=30, interval=0.2)  # all stored
        caught: list[str] = []
        async with http.ws_connect(
            web_b.url.replace("http", "ws", 1) + f"/api/v1/events?since={max(seen_ids)}",
            headers=auth,
        ) as again:

            async def catch_up() -> bool:
                frame = await again.receive(timeout=10)
                event = json.loads(frame.data)
                if event.get("type") == "message.created" and event.get("replayed"):
                    caught.append(event["data"]["message"]["text"])
                return all(f"پیام 0 از مشتری {n}" in caught for n in (20, 21))

            await eventually(catch_up, timeout=20, interval=0)


async def _count(cluster: Cluster, n: int) -> list[tuple[str, str | None, int]] | None:
    rows = await cluster.stored()
    return rows if len(rows) >= n else None


async def _leader(cluster: Cluster, channel: str) -> int:
    """The pid of the poller process holding the channel's lease (`host:pid:random`)."""
    client = Redis.from_url(REDIS_URL)
    try:
        holder = await client.get(f"{cluster.prefix}:poller:{channel}")
    finally:
        await client.aclose()
    assert holder is not None, f"no poller leads {channel}"
    return int(holder.decode().split(":")[1])


class PrivateRedis:
    """A Redis server of the test's own, with the append-only file a production Redis needs
    for "acknowledged is not lost" (the machine's shared Redis keeps nothing on disk), so
    that it can be restarted with its own shutdown command while traffic flows."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        try:
            await eventually(lambda: _pings(client), timeout=10)
        finally:
            await client.aclose()

    async def restart(self, *, down_for: float) -> None:
        """`redis-cli shutdown` (the server syncs its file and exits), then start it again."""
        shutdown = await asyncio.create_subprocess_exec(
            "redis-cli", "-p", str(self.port), "shutdown", stdout=asyncio.subprocess.DEVNULL
        )
        await shutdown.wait()
        assert self.process is not None
        await asyncio.wait_for(self.process.wait(), 10)
        await asyncio.sleep(down_for)
        await self.start()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _pings(client: Redis) -> bool:
    with contextlib.suppress(*_REDIS_DOWN):
        return bool(await client.ping())
    return False


async def _post_until_queued(
    http: aiohttp.ClientSession, base: str, text_: str, refused: list[int]
) -> None:
    """A web form's sender: tries again after a refusal or a cut connection, as browsers'
    scripts and webhook senders do, until the message is acknowledged (202)."""
    form = {"name": "مشتری", "email": f"{abs(hash(text_))}@example.com", "message": text_}
    async with asyncio.timeout(60):
        while True:
            try:
                async with http.post(f"{base}/channels/webform/contact", data=form) as response:
                    if response.status == 202:
                        return
                    assert response.status == 503, await response.text()
                    refused.append(response.status)
            except aiohttp.ClientError:
                refused.append(0)
            await asyncio.sleep(0.1)


@pytest.mark.timeout(240)
async def test_redis_restarting_and_postgres_refusing_lose_nothing(tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path)
    await redis.start()
    try:
        channels: list[dict[str, Any]] = [{"type": "webform", "name": "contact"}]
        async with running_cluster(tmp_path, redis.url, channels) as cluster:
            web = await cluster.start("web")
            routers = [await cluster.start("router"), await cluster.start("router")]
            refused: list[int] = []
            async with aiohttp.ClientSession() as http:
                # Six customers write ten messages each, one every 50 ms; Redis restarts
                # in the middle of it.
                async def customer(who: int) -> None:
                    for n in range(10):
                        await _post_until_queued(http, web.url, f"پیام {n} از {who}", refused)
                        await asyncio.sleep(0.05)

                posting = asyncio.gather(*(customer(who) for who in range(6)))
                await asyncio.sleep(0.2)
                await redis.restart(down_for=1.0)
                await posting
                assert refused  # some posts met the restart (and were sent again)
                rows = await eventually(lambda: _count(cluster, 60), timeout=60, interval=0.3)
                assert len(rows) == len({r[1] for r in rows}) == 60  # all, each once

                # PostgreSQL refuses connections for two seconds: the web process still takes
                # messages (the queue is Redis), the routers cannot store them and say so on
                # /healthz, then store each once when it is back.
                await _refuse_connections(cluster.database, True)
                try:
                    await asyncio.gather(
                        *(
                            _post_until_queued(http, web.url, f"پیام {n} هنگام قطعی", refused)
                            for n in range(20)
                        )
                    )
                    async with http.get(routers[0].url + "/healthz") as response:
                        assert response.status == 503
                    await asyncio.sleep(2)
                finally:
                    await _refuse_connections(cluster.database, False)
                rows = await eventually(lambda: _count(cluster, 80), timeout=60, interval=0.3)
                assert len(rows) == len({r[1] for r in rows}) == 80
                async with http.get(routers[0].url + "/healthz") as response:
                    assert response.status == 200
    finally:
        await redis.stop()


async def _refuse_connections(database: str, refuse: bool) -> None:
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            allow = "false" if refuse else "true"
            await connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allow}'))
            if refuse:
                await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
                    )
                )
    finally:
        await admin.dispose()
