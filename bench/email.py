"""The email measurements, each against a ceiling measured in the same run on the same servers.

Inbound: a Dovecot mailbox holding `email_messages` mails (written into its maildir as a local
delivery agent does), read by the email channel in the Runtime — fetched, parsed, queued and
routed into a fresh SQLite database — against aioimaplib alone fetching the same bodies in the
same batches (no parsing, nothing stored). Outbound: agents' replies stored, queued and sent by
the Deliverer through the email channel to an aiosmtpd server (its own process, discarding what
it gets), against a raw aiosmtplib send loop to that server with the same concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aioimaplib
import aiosmtplib
from sqlalchemy import update

from bench.seed import sentences
from bench.settings import Settings
from channels.email import FETCH_BATCH
from inbox.accounts import create_agent
from inbox.config import parse_config
from inbox.runtime import Runtime
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.models import Agent
from tests.fixtures.dovecot import PASSWORD, Dovecot, free_port

USER = "bench"
ADDRESS = "support@pishkhan.test"
PASSWORD_ENV = "PISHKHAN_BENCH_MAIL_PASSWORD"
SEND_CONCURRENCY = 64
"""The SQL queue's concurrency (`SqlQueue(concurrency=64)`): how many replies the Deliverer
sends at once, so the raw loop gets the same."""
CEILING_RUNS = 2
TIMEOUT = 900.0


def corpus(count: int) -> list[bytes]:
    """`count` customer mails as clients write them: Persian text from the seeds, a third with
    an HTML alternative, one in seven in windows-1256, one in ten with a small PDF, replies to
    earlier mails (In-Reply-To/References), 1,000 senders writing again and again."""
    lines = sentences()
    mails: list[bytes] = []
    for i in range(count):
        mail = EmailMessage()
        sender = i % 1000
        mail["From"] = f"مشتری {sender} <customer{sender}@example.com>"
        mail["To"] = ADDRESS
        mail["Subject"] = f"سفارش {i}: {lines[i % len(lines)][:40]}"
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = f"<bench{i}@mail.example.com>"
        if i >= 1000 and i % 2 == 0:  # the sender's earlier mail, answered
            parent = f"<bench{i - 1000}@mail.example.com>"
            mail["In-Reply-To"] = parent
            mail["References"] = parent
        body = "\n\n".join(lines[(i + k) % len(lines)] for k in range(3))
        charset = "windows-1256" if i % 7 == 0 else "utf-8"
        try:
            mail.set_content(body, charset=charset)
        except UnicodeEncodeError:
            mail.set_content(body)
        if i % 3 == 0:
            paragraphs = "".join(f"<p>{line}</p>" for line in body.split("\n\n"))
            mail.add_alternative(f'<html><body dir="rtl">{paragraphs}</body></html>', "html")
        if i % 10 == 0:
            pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8
            mail.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{i}.pdf")
        mails.append(mail.as_bytes())
    return mails


# inbound ---------------------------------------------------------------------------------------


async def raw_fetch(port: int, count: int) -> float:
    """The ceiling: log in, select, UID FETCH every body in `FETCH_BATCH` batches, like the
    channel does, and nothing else. Returns the seconds taken; checks every body came."""
    started = time.perf_counter()
    client = aioimaplib.IMAP4("127.0.0.1", port, timeout=60)
    await client.wait_hello_from_server()
    await client.login(USER, PASSWORD)
    response = await client.select("INBOX")
    if response.result != "OK":
        raise RuntimeError(f"raw SELECT failed: {response.lines!r}")
    uids = list(range(1, count + 1))
    bodies = 0
    for start in range(0, count, FETCH_BATCH):
        batch = ",".join(str(uid) for uid in uids[start : start + FETCH_BATCH])
        response = await client.uid("fetch", batch, "(UID BODY.PEEK[])")
        if response.result != "OK":
            raise RuntimeError(f"raw FETCH failed: {response.lines[-1]!r}")
        bodies += sum(1 for line in response.lines if isinstance(line, bytearray))
    elapsed = time.perf_counter() - started
    await client.logout()
    if bodies != count:
        raise RuntimeError(f"raw FETCH got {bodies} bodies of {count}")
    return elapsed


def _count(path: Path, sql: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute(sql).fetchone()[0])


async def _until(probe: Callable[[], Awaitable[bool]], what: str) -> float:
    """Poll `probe()` until true; return `perf_counter()` of the poll that saw it."""
    deadline = time.perf_counter() + TIMEOUT
    while not await probe():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"not {what} within {TIMEOUT:.0f} s")
        await asyncio.sleep(0.02)
    return time.perf_counter()


def config(workdir: Path, dovecot: Dovecot, smtp_port: int, synchronous: str) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {
            "url": f"sqlite+aiosqlite:///{workdir / 'pishkhan.db'}",
            "sqlite_synchronous": synchronous,
        },
        "channels": [
            {
                "type": "email",
                "name": "support",
                "address": ADDRESS,
                "display_name": "Pishkhan Support",
                "imap_host": "127.0.0.1",
                "imap_port": dovecot.port,
                "imap_security": "none",
                "imap_username": USER,
                "imap_password": f"${{{PASSWORD_ENV}}}",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "smtp_security": "none",
            }
        ],
    }


async def _prepare(data: dict[str, Any]) -> int:
    """Migrate the fresh database and add one online agent with room for everything."""
    parsed = parse_config(data)
    engine = create_engine(parsed.storage)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        async with sessions.begin() as session:
            agent = await create_agent(
                session,
                email="bench@example.com",
                name="Bench",
                password="bench password 1234",
                capacity=10_000_000,
            )
            await session.flush()
            await session.execute(
                update(Agent).where(Agent.id == agent.id).values(presence="online")
            )
            return agent.id
    finally:
        await engine.dispose()


async def _inbound(runtime: Runtime, db: Path, count: int) -> dict[str, float]:
    started = time.perf_counter()
    await runtime.start()
    assert runtime.services is not None
    channel = runtime.services.channels["support"]

    async def queued() -> bool:
        status = channel.status()
        if status["last_error"] and not status["connected"]:
            raise RuntimeError(f"the email channel failed: {status['last_error']}")
        return int(status["received"]) >= count

    async def stored() -> bool:
        return (
            await asyncio.to_thread(
                _count, db, "SELECT count(*) FROM messages WHERE direction = 'in'"
            )
            >= count
        )

    queued_at = await _until(queued, "queued")
    stored_at = await _until(stored, "stored")
    return {"queued_seconds": queued_at - started, "stored_seconds": stored_at - started}


# outbound --------------------------------------------------------------------------------------


async def start_sink(port: int, log: Path) -> asyncio.subprocess.Process:
    """aiosmtpd in its own process, accepting and discarding every mail."""
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    async with asyncio.timeout(30):
        while True:
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return process
            await asyncio.sleep(0.05)


def _reply_mail(i: int, text: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"Bench via Pishkhan Support <{ADDRESS}>"
    mail["To"] = f"customer{i % 1000}@example.com"
    mail["Subject"] = f"Re: سفارش {i}"
    mail["Message-ID"] = f"<raw{i}@pishkhan.test>"
    mail.set_content(text)
    mail.add_alternative(f"<p>{text}</p>", subtype="html")
    return mail


async def raw_send(port: int, count: int, text: str) -> float:
    """The ceiling: aiosmtplib.send (a connection per mail, like the channel), SEND_CONCURRENCY
    at a time."""
    limit = asyncio.Semaphore(SEND_CONCURRENCY)

    async def one(i: int) -> None:
        async with limit:
            await aiosmtplib.send(
                _reply_mail(i, text),
                sender=ADDRESS,
                recipients=[f"customer{i % 1000}@example.com"],
                hostname="127.0.0.1",
                port=port,
                timeout=60,
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started


async def _outbound(runtime: Runtime, db: Path, agent_id: int, count: int, text: str) -> float:
    """Agents' replies to `count` conversations, from the first reply stored to the last one
    recorded sent."""
    assert runtime.services is not None
    actions = runtime.services.actions
    conversations = [
        row[0]
        for row in await asyncio.to_thread(
            _rows, db, f"SELECT id FROM conversations ORDER BY id LIMIT {count}"
        )
    ]
    if len(conversations) < count:
        raise RuntimeError(f"only {len(conversations)} conversations to reply to, not {count}")
    limit = asyncio.Semaphore(SEND_CONCURRENCY)

    async def reply(conversation_id: int) -> None:
        async with limit:
            await actions.reply(conversation_id, agent_id, text)

    started = time.perf_counter()
    await asyncio.gather(*(reply(c) for c in conversations))

    async def sent() -> bool:
        done = await asyncio.to_thread(
            _rows,
            db,
            "SELECT delivery_status, count(*) FROM messages WHERE direction = 'out' "
            "GROUP BY delivery_status",
        )
        statuses = dict(done)
        if statuses.get("failed"):
            raise RuntimeError(f"replies failed: {statuses}")
        return int(statuses.get("sent", 0)) >= count

    return await _until(sent, "sent") - started


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return list(db.execute(sql).fetchall())


# the run ---------------------------------------------------------------------------------------


async def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    count, replies = settings.email_messages, min(settings.email_replies, settings.email_messages)
    os.environ[PASSWORD_ENV] = PASSWORD
    dovecot = Dovecot(users=[USER])  # its own temp dir: Dovecot's users must traverse it
    smtp_port = free_port()
    sink = await start_sink(smtp_port, workdir / "smtp.log")
    runtime: Runtime | None = None
    try:
        mails = corpus(count)
        size = sum(len(m) for m in mails)
        filled = time.perf_counter()
        await asyncio.to_thread(dovecot.deliver, USER, mails)
        filled = time.perf_counter() - filled
        await asyncio.to_thread(dovecot.start)
        await raw_fetch(dovecot.port, count)  # Dovecot indexes the new maildir: not timed
        fetch = min([await raw_fetch(dovecot.port, count) for _ in range(CEILING_RUNS)])

        data = config(workdir, dovecot, smtp_port, settings.synchronous)
        agent_id = await _prepare(data)
        runtime = Runtime(parse_config(data), roles=("router", "poller"), migrate=False)
        db = workdir / "pishkhan.db"
        inbound = await _inbound(runtime, db, count)
        conversations = await asyncio.to_thread(_count, db, "SELECT count(*) FROM conversations")
        assigned = await asyncio.to_thread(
            _count, db, "SELECT count(*) FROM conversations WHERE assignee_id IS NOT NULL"
        )

        text = "سلام، سفارش شما امروز ارسال شد. " * 4
        await raw_send(smtp_port, min(100, replies), text)  # warm the sink
        send = min([await raw_send(smtp_port, replies, text) for _ in range(CEILING_RUNS)])
        outbound = await _outbound(runtime, db, agent_id, replies, text)
    finally:
        if runtime is not None:
            await runtime.stop()
        await asyncio.to_thread(dovecot.cleanup)
        with contextlib.suppress(ProcessLookupError):
            sink.terminate()
        await sink.wait()
    return {
        "messages": count,
        "mailbox_bytes": size,
        "maildir_write_seconds": filled,
        "inbound": {
            "raw_fetch_per_second": count / fetch,
            "queued_per_second": count / inbound["queued_seconds"],
            "stored_per_second": count / inbound["stored_seconds"],
            "ratio": (count / inbound["stored_seconds"]) / (count / fetch),
            "conversations": conversations,
            "assigned": assigned,
        },
        "outbound": {
            "replies": replies,
            "concurrency": SEND_CONCURRENCY,
            "raw_send_per_second": replies / send,
            "sent_per_second": replies / outbound,
            "ratio": send / outbound,
        },
    }


def table(result: dict[str, Any]) -> str:
    inbound, outbound = result["inbound"], result["outbound"]
    rows = [
        ("email figure", "Pishkhan", "ceiling", "ratio"),
        (
            f"inbound mails/s, {result['messages']} in Dovecot → stored+routed",
            f"{inbound['stored_per_second']:.0f}/s",
            f"{inbound['raw_fetch_per_second']:.0f}/s (aioimaplib FETCH only)",
            f"{inbound['ratio'] * 100:.1f} %",
        ),
        (
            "  of which: fetched, parsed, queued",
            f"{inbound['queued_per_second']:.0f}/s",
            f"{inbound['raw_fetch_per_second']:.0f}/s",
            f"{inbound['queued_per_second'] / inbound['raw_fetch_per_second'] * 100:.1f} %",
        ),
        (
            f"outbound mails/s, {outbound['replies']} replies → SMTP, sent",
            f"{outbound['sent_per_second']:.0f}/s",
            f"{outbound['raw_send_per_second']:.0f}/s (aiosmtplib.send ×{outbound['concurrency']})",
            f"{outbound['ratio'] * 100:.1f} %",
        ),
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(
        f"({inbound['conversations']} conversations, {inbound['assigned']} assigned; "
        f"{result['mailbox_bytes'] / 1e6:.1f} MB of mail)"
    )
    return "\n".join(lines)


if __name__ == "__main__":  # python -m bench.email [--quick]: this benchmark alone
    import tempfile

    from bench.settings import load

    with tempfile.TemporaryDirectory(prefix="pishkhan-bench-email-") as tmp:
        print(table(asyncio.run(run(load(sys.argv[1:]), Path(tmp)))))
