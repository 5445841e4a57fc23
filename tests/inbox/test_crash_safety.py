"""Crash safety: `pishkhan serve` killed with SIGKILL in the middle of a burst of web form posts.

Every post answered 2xx was durably queued before the answer, so after a restart on the same
database it is stored exactly once and assigned; the others were refused or cut off, never
silently half-done."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from storage.models import Conversation, DeadLetter, Message, QueueEntry

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ROUNDS = (300, 600, 1200)  # posts per round; another round only when a kill found nothing
KILL_AFTER = 100  # answers (of any kind) seen before the server is killed
EMAIL = "crash@example.com"
PASSWORD = "correct horse battery"
_SERVING = re.compile(r"serving on (http://\S+)")


@dataclass
class Outcome:
    index: int
    status: int | None = None  # None: no complete answer (refused, reset, cut off)
    external_id: str | None = None
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def text_of(index: int) -> str:
    return f"crash-safety post {index}: سفارشم هنوز نرسیده"


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    data = {
        "server": {"host": "127.0.0.1", "port": free_port()},
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path / 'pishkhan.db'}"},
        # Default lease (30 s): the restart must take the killed process's claims back itself.
        "channels": [{"type": "webform", "name": "contact"}],
    }
    config.write_text(json.dumps(data))  # JSON is YAML
    return config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def command(config: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "inbox.cli",
        "--config",
        str(config),
        "--log-level",
        "WARNING",
        *args,
    ]


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def pishkhan(config: Path, *args: str, stdin: str = "") -> str:
    process = await asyncio.create_subprocess_exec(
        *command(config, *args),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin.encode())
    assert process.returncode == 0, f"pishkhan {' '.join(args)}: {err.decode()}"
    return out.decode()


@dataclass
class Server:
    process: asyncio.subprocess.Process
    url: str = ""


@contextlib.asynccontextmanager
async def serving(config: Path, log: Path) -> AsyncIterator[Server]:
    """`pishkhan serve` in a process group of its own, killed on the way out whatever happens."""
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            *command(config, "serve"),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    server = Server(process)
    try:
        server.url = await asyncio.wait_for(serving_url(process, log), 20)
        yield server
    finally:
        kill(server)
        await process.wait()


async def serving_url(process: asyncio.subprocess.Process, log: Path) -> str:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        if match := _SERVING.search(line.decode()):
            return match.group(1)
    raise AssertionError(f"pishkhan serve exited early:\n{tail(log)}")


def kill(server: Server) -> None:
    if server.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)


async def burst(
    http: aiohttp.ClientSession, server: Server, spacing: float, first: int, posts: int
) -> list[Outcome]:
    """Fire posts `first` … `first + posts - 1` `spacing` seconds apart, without waiting for
    answers, and SIGKILL the server once KILL_AFTER answers are in."""
    answered = 0
    enough = asyncio.Event()

    async def post(index: int) -> Outcome:
        nonlocal answered
        await asyncio.sleep((index - first) * spacing)
        outcome = Outcome(index)
        form = {
            "name": f"Crash {index}",
            "email": f"crash-{index}@example.com",
            "message": text_of(index),
        }
        try:
            async with http.post(server.url + "/channels/webform/contact", data=form) as response:
                body = await response.read()
                outcome.status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome.error = type(exc).__name__
        else:
            if outcome.accepted:
                outcome.external_id = json.loads(body)["id"]
            answered += 1
            if answered >= KILL_AFTER:
                enough.set()
        return outcome

    async def killer() -> None:
        await enough.wait()
        kill(server)

    killing = asyncio.create_task(killer(), name="killer")
    try:
        outcomes = await asyncio.gather(*(post(index) for index in range(first, first + posts)))
    finally:
        killing.cancel()
    assert server.process.returncode is None or server.process.returncode == -signal.SIGKILL
    kill(server)  # in case every post was answered before the killer ran
    return outcomes


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'pishkhan.db'}")
    yield engine
    engine.dispose()


def queued(database: Engine) -> int:
    with Session(database) as session:
        return session.scalar(select(func.count()).select_from(QueueEntry)) or 0


# All at once, the kill finds nearly everything queued and nothing routed yet; 4 ms apart, it
# lands while the router is mid-way, so redelivery of routed entries is exercised too.
@pytest.mark.parametrize("spacing", [0.0, 0.004], ids=["all-at-once", "4ms-apart"])
async def test_posts_answered_2xx_survive_sigkill_exactly_once(
    tmp_path: Path, database: Engine, spacing: float
) -> None:
    config = write_config(tmp_path)
    log = tmp_path / "pishkhan.log"
    await pishkhan(
        config,
        "agent",
        "add",
        EMAIL,
        "--capacity",
        "100000",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    auth = {"Authorization": "Bearer " + (await pishkhan(config, "agent", "token", EMAIL)).strip()}
    outcomes: list[Outcome] = []
    connector = aiohttp.TCPConnector(limit=300)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=15)
    ) as http:
        # Group commit answers posts in bursts and the router drains fast, so a quick server may
        # have answered and routed a whole round before the kill: such a round proved nothing,
        # and the next one, twice as large, runs on the same database.
        for posts in ROUNDS:
            async with serving(config, log) as first:
                async with http.put(
                    first.url + "/api/v1/me/presence", headers=auth, json={"presence": "online"}
                ) as response:
                    assert response.status == 200, await response.text()
                round_outcomes = await burst(http, first, spacing, len(outcomes), posts)
            outcomes += round_outcomes
            left_in_queue = queued(database)
            answers = [o for o in round_outcomes if o.status is not None]
            assert len(answers) >= KILL_AFTER, "the server died before KILL_AFTER answers"
            if left_in_queue or len(answers) < posts:
                break
        else:
            pytest.fail(f"no kill in {len(ROUNDS)} rounds found anything in flight or queued")

        async with serving(config, log):
            for _ in range(150):
                if queued(database) == 0:
                    break
                await asyncio.sleep(0.1)
            assert queued(database) == 0, f"queue not drained after restart:\n{tail(log)}"

    accepted = [o for o in outcomes if o.accepted]
    refused = [o for o in outcomes if o.status is not None and not o.accepted]
    assert [o.index for o in outcomes] == list(range(len(outcomes))), "a post was lost track of"
    assert all(o.status >= 400 for o in refused if o.status is not None), refused

    with Session(database) as session:
        rows = session.execute(
            select(Message.external_id, Message.text, Conversation.assignee_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.channel == "contact")
        ).all()
        dead = session.scalar(select(func.count()).select_from(DeadLetter))
    stored_ids = [row.external_id for row in rows]
    stored_texts = [row.text for row in rows]
    assert len(stored_ids) == len(set(stored_ids)), "a message was stored twice"
    assert len(stored_texts) == len(set(stored_texts)), "a post was stored twice"
    assert dead == 0
    by_id = {row.external_id: row for row in rows}
    for outcome in accepted:
        row = by_id.get(outcome.external_id)
        assert row is not None, f"post {outcome.index} was answered 2xx but is not stored"
        assert row.text == text_of(outcome.index)
        assert row.assignee_id is not None, f"post {outcome.index} is stored but unassigned"
    assert all(row.assignee_id is not None for row in rows), "a stored message is unassigned"
