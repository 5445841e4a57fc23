"""The embedded queue handling new entries inside the transaction that publishes them: what the
handler does commits with the entry or not at all, failures and keys with older entries waiting
go to the ordinary consumer, in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from storage.config import QueueConfig, StorageConfig
from storage.db import SessionFactory, create_engine, session_factory
from storage.migrate import upgrade
from storage.models import Label, QueueEntry
from storage.queue import Handled, Item
from storage.queue.sql import SqlQueue
from storage.work import UnitOfWork

TOPIC = "inbound"


class InTransaction:
    """Writes a label per payload; `bad` fails alone, `boom` raises after writing."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions
        self.handled: list[bytes] = []
        self.committed_when_told: list[bool] = []

    def __call__(self, session: Session, items: Sequence[Item]) -> Handled:
        failed: dict[str, str] = {}
        for item in items:
            if item.payload == b"bad":
                failed[item.id] = "ValueError: bad"
                continue
            session.execute(insert(Label), {"name": item.payload.decode(), "color": "#000000"})
            if item.payload == b"boom":
                raise RuntimeError("the handler broke half-way")
            self.handled.append(item.payload)
        names = [item.payload.decode() for item in items if item.id not in failed]

        async def after_commit() -> None:
            async with self.sessions() as session:
                stored = set(
                    (await session.scalars(select(Label.name).where(Label.name.in_(names)))).all()
                )
            self.committed_when_told.append(stored == set(names))

        return Handled(failed, after_commit)


class Ordinary:
    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.failing: set[bytes] = set()

    async def __call__(self, item: Item) -> None:
        if item.payload in self.failing:
            raise RuntimeError("not yet")
        self.seen.append(item.payload)


@pytest_asyncio.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[SessionFactory]:
    engine = create_engine(
        StorageConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}", sqlite_synchronous="normal")
    )
    await upgrade(engine)
    yield session_factory(engine)
    await engine.dispose()


async def labels(sessions: SessionFactory) -> set[str]:
    async with sessions() as session:
        return set((await session.scalars(select(Label.name))).all())


async def depth(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(QueueEntry)) or 0)


@contextlib.asynccontextmanager
async def consuming(queue: SqlQueue, handler: Ordinary) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(queue.consume(TOPIC, handler, stopping=stopping))
    await asyncio.sleep(0.2)  # the consumer loads its schedule
    try:
        yield
    finally:
        stopping.set()
        await task


async def eventually(check: object, *, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def make_queue(sessions: SessionFactory, *, exclusive: bool = True) -> SqlQueue:
    return SqlQueue(
        sessions,
        QueueConfig(max_attempts=3),
        poll_interval=0.05,
        exclusive=exclusive,
        work=UnitOfWork.for_sessions(sessions),
    )


async def test_what_is_published_is_handled_in_the_same_commit(sessions: SessionFactory) -> None:
    queue, ordinary, handler = make_queue(sessions), Ordinary(), InTransaction(sessions)
    queue.handle_in_transaction(TOPIC, handler)
    async with consuming(queue, ordinary):
        await asyncio.gather(*(queue.publish(TOPIC, f"k{i}", f"m{i}".encode()) for i in range(5)))
        # Handled by the time publish returned: no consumer round, nothing left queued.
        assert await labels(sessions) == {f"m{i}" for i in range(5)}
        assert await depth(sessions) == 0
        await asyncio.sleep(0.2)
    await queue.stop()
    assert ordinary.seen == []
    assert handler.committed_when_told and all(handler.committed_when_told)


async def test_a_failed_item_stays_queued_for_the_consumer(sessions: SessionFactory) -> None:
    queue, ordinary, handler = make_queue(sessions), Ordinary(), InTransaction(sessions)
    queue.handle_in_transaction(TOPIC, handler)
    async with consuming(queue, ordinary):
        await asyncio.gather(queue.publish(TOPIC, "a", b"good"), queue.publish(TOPIC, "b", b"bad"))

        async def consumed() -> bool:
            return ordinary.seen == [b"bad"]

        await eventually(consumed)
    await queue.stop()
    assert await labels(sessions) == {"good"}
    assert await depth(sessions) == 0


async def test_a_handler_that_raises_leaves_nothing_half_written(
    sessions: SessionFactory,
) -> None:
    queue, ordinary, handler = make_queue(sessions), Ordinary(), InTransaction(sessions)
    queue.handle_in_transaction(TOPIC, handler)
    async with consuming(queue, ordinary):
        await asyncio.gather(queue.publish(TOPIC, "a", b"fine"), queue.publish(TOPIC, "b", b"boom"))
        # The savepoint took back both labels; both entries went to the ordinary consumer.
        assert await labels(sessions) == set()

        async def consumed() -> bool:
            return sorted(ordinary.seen) == [b"boom", b"fine"]

        await eventually(consumed)
    await queue.stop()
    assert await depth(sessions) == 0


async def test_a_key_with_an_older_entry_waiting_keeps_its_order(sessions: SessionFactory) -> None:
    queue, ordinary, handler = make_queue(sessions), Ordinary(), InTransaction(sessions)
    queue.handle_in_transaction(TOPIC, handler)
    ordinary.failing.add(b"bad")
    async with consuming(queue, ordinary):
        await queue.publish(TOPIC, "k", b"bad")  # fails in transaction, then in the consumer
        await asyncio.sleep(0.2)
        await queue.publish(TOPIC, "k", b"second")  # must wait behind it
        await queue.publish(TOPIC, "other", b"free")  # another key: handled at once
        assert await labels(sessions) == {"free"}
        assert handler.handled == [b"free"]
        ordinary.failing.clear()

        async def consumed() -> bool:
            return ordinary.seen == [b"bad", b"second"]

        await eventually(consumed, within=10)
    await queue.stop()


async def test_nothing_is_handled_before_the_consumer_has_loaded_what_waits(
    sessions: SessionFactory,
) -> None:
    queue, ordinary, handler = make_queue(sessions), Ordinary(), InTransaction(sessions)
    queue.handle_in_transaction(TOPIC, handler)
    await queue.publish(TOPIC, "k", b"early")  # no consumer yet: it may not know what waits
    assert handler.handled == []
    assert await queue.drain(TOPIC, ordinary) == 1
    assert ordinary.seen == [b"early"]
    await queue.stop()


@pytest.mark.parametrize("exclusive", [False])
async def test_a_shared_queue_leaves_everything_to_its_consumers(
    sessions: SessionFactory, exclusive: bool
) -> None:
    queue, ordinary, handler = (
        make_queue(sessions, exclusive=exclusive),
        Ordinary(),
        InTransaction(sessions),
    )
    queue.handle_in_transaction(TOPIC, handler)
    async with consuming(queue, ordinary):
        await queue.publish(TOPIC, "k", b"shared")

        async def consumed() -> bool:
            return ordinary.seen == [b"shared"]

        await eventually(consumed)
    await queue.stop()
    assert handler.handled == []
