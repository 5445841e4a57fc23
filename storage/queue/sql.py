"""The embedded queue: a table in the application's own database (SQLite or PostgreSQL).

Only the oldest unfinished entry of each key can be claimed, so one sender's messages are handled
in order even with several consumers; a claim is a lease, so a dead consumer's entries come back.
Concurrent publishes are written in one transaction (group commit) and each returns once stored.
Every write is a unit of work (`storage.work`): on SQLite they all go through the one writer
thread, so publishing never sleeps on a lock the router holds.

An *exclusive* queue (the embedded SQLite default: one process owns the file) keeps its schedule
in memory (`storage.queue.schedule`): what is published here goes straight to the local consumer
with no claim query, and acknowledgements are written lazily, with the next publish or within
`ACK_DELAY` seconds. After a crash the unacknowledged entries run again: at-least-once, as always
(the router drops what it has stored already).

An exclusive queue may also hand a topic's new entries to a handler *inside the transaction that
publishes them* (`handle_in_transaction`): the router stores and assigns a web form's message in
the same commit that queues it, one commit instead of two and no wait in between. What that
handler cannot handle, and every entry whose key still has older ones waiting, stays queued for
the ordinary consumer, so order per key holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, aliased

from storage.bulk import insert_ids
from storage.config import QueueConfig
from storage.db import SessionFactory
from storage.models import DeadLetter, QueueEntry, utcnow
from storage.queue.base import DeadItem, Handled, Handler, Item, QueueStats, backoff_seconds
from storage.queue.schedule import Entry, Schedule
from storage.work import UnitOfWork

logger = logging.getLogger(__name__)

_Pending = tuple[str, str, bytes, "asyncio.Future[str]"]
ACK_DELAY = 0.5
"""Seconds an exclusive queue may hold acknowledgements before writing them on their own."""
_ACK_CHUNK = 500

InTransaction = Callable[[Session, Sequence[Item]], Handled]
"""Handles new entries in the publishing unit of work (see `SqlQueue.handle_in_transaction`)."""


class SqlQueue:
    def __init__(
        self,
        sessions: SessionFactory,
        config: QueueConfig,
        *,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 0.5,
        concurrency: int = 64,
        work: UnitOfWork | None = None,
        exclusive: bool = False,
    ) -> None:
        """`exclusive`: no other process consumes or publishes to this database's queue."""
        self._sessions = sessions
        self._work = work or UnitOfWork.for_sessions(sessions)
        self._owns_work = work is None
        self._config = config
        self._clock = clock
        self._poll_interval = poll_interval
        self._concurrency = concurrency
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._wakeups: dict[str, asyncio.Event] = {}
        self._exclusive = exclusive
        self._schedules: dict[str, Schedule] = {}
        self._loading: dict[str, asyncio.Task[Schedule]] = {}
        self._acks: list[int] = []
        self._ack_writer: asyncio.Task[None] | None = None
        self._in_transaction: dict[str, InTransaction] = {}

    def handle_in_transaction(self, topic: str, handler: InTransaction) -> None:
        """Handle `topic`'s new entries in the transaction that publishes them, when their key
        has nothing older waiting. Only an exclusive queue does (it alone knows, in memory,
        what waits); others ignore this and leave everything to `consume`."""
        if self._exclusive:
            self._in_transaction[topic] = handler

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        """Finish writing what was published; safe to call twice."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        await self._write_acks()
        if self._owns_work:
            await self._work.close()

    async def publish(self, topic: str, key: str, payload: bytes) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((topic, key, payload, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="sql-queue-flush")
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            rows = [
                {"topic": t, "key": k, "payload": p, "available_at": 0.0, "claimed_until": 0.0}
                for t, k, p, _ in batch
            ]
            now_handled = self._handled_now(batch)
            acks, self._acks = self._acks, []
            try:
                ids, handled = await self._work.run(
                    _publish, rows, acks, now_handled, self._in_transaction
                )
            except Exception as exc:  # every waiting publisher hears of it
                self._acks.extend(acks)
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            done = {entry_id for h in handled for entry_id in h.done}
            for (topic, key, payload, future), entry_id in zip(batch, ids, strict=True):
                schedule = self._schedules.get(topic)
                if schedule is not None and entry_id not in done:
                    schedule.add(Entry(int(entry_id), key, payload))
                if not future.done():
                    future.set_result(entry_id)
            for topic in {t for t, *_ in batch}:
                self._wakeup(topic).set()
            for h in handled:
                try:
                    await h.after_commit()
                except Exception:
                    logger.exception("after handling queue entries in their transaction")

    def _handled_now(self, batch: Sequence[_Pending]) -> list[int]:
        """Which of `batch` (by position) the topic's in-transaction handler may take: its
        schedule is loaded and nothing older of the same key waits in it."""
        now: list[int] = []
        for position, (topic, key, _, _) in enumerate(batch):
            loading = self._loading.get(topic)
            if topic not in self._in_transaction or loading is None or not loading.done():
                continue
            if self._schedules[topic].idle(key):
                now.append(position)
        return now

    def _wakeup(self, topic: str) -> asyncio.Event:
        """Set when something is published on `topic` in this process."""
        return self._wakeups.setdefault(topic, asyncio.Event())

    async def _claim(self, topic: str, limit: int) -> list[Item]:
        return await self._work.run(_claim, topic, limit, self._clock(), self._config.lease_seconds)

    async def _handle(self, items: list[Item], handler: Handler) -> dict[str, str]:
        """Run the handler on every item, `concurrency` at a time; returns the failures' errors
        by item id."""
        limit = asyncio.Semaphore(self._concurrency)
        failures: dict[str, str] = {}

        async def one(item: Item) -> None:
            async with limit:
                try:
                    await handler(item)
                except Exception as exc:
                    logger.exception("queue item %s (key %s) failed", item.id, item.key)
                    failures[item.id] = f"{type(exc).__name__}: {exc}"

        await asyncio.gather(*(one(item) for item in items))
        return failures

    async def _process(self, items: list[Item], handler: Handler) -> None:
        failures = await self._handle(items, handler)
        await self._work.run(_settle, items, failures, self._clock(), self._config.max_attempts)

    async def drain(self, topic: str, handler: Handler) -> int:
        if self._exclusive:
            return await self._drain_scheduled(topic, handler)
        handled = 0
        while items := await self._claim(topic, self._config.batch_size):
            await self._process(items, handler)
            handled += len(items)
        return handled

    async def consume(self, topic: str, handler: Handler, *, stopping: asyncio.Event) -> None:
        if self._exclusive:
            return await self._consume_scheduled(topic, handler, stopping)
        wakeup = self._wakeup(topic)
        while not stopping.is_set():
            wakeup.clear()
            try:
                items = await self._claim(topic, self._config.batch_size)
            except Exception:
                logger.exception("claiming from queue %s failed; retrying", topic)
                items = []
                await asyncio.sleep(self._poll_interval)
            if items:
                await self._process(items, handler)
                continue
            waiters = [
                asyncio.create_task(wakeup.wait(), name="sql-queue-wakeup"),
                asyncio.create_task(stopping.wait(), name="sql-queue-stopping"),
            ]
            await asyncio.wait(
                waiters, timeout=self._poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()

    async def stats(self, topic: str) -> QueueStats:
        await self._write_acks()
        now = self._clock()
        async with self._sessions() as session:
            depth = await session.scalar(
                select(func.count()).select_from(QueueEntry).where(QueueEntry.topic == topic)
            )
            if self._exclusive:
                schedule = self._schedules.get(topic)
                pending: int | None = schedule.running if schedule else 0
            else:
                pending = await session.scalar(
                    select(func.count())
                    .select_from(QueueEntry)
                    .where(QueueEntry.topic == topic, QueueEntry.claimed_until > now)
                )
            dead = await session.scalar(
                select(func.count()).select_from(DeadLetter).where(DeadLetter.topic == topic)
            )
            oldest = await session.scalar(
                select(func.min(QueueEntry.created_at)).where(QueueEntry.topic == topic)
            )
        lag = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        return QueueStats(
            depth=depth or 0, pending=pending or 0, dead=dead or 0, lag_seconds=max(lag, 0.0)
        )

    async def dead_letters(self, topic: str, *, limit: int = 100) -> list[DeadItem]:
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(DeadLetter)
                    .where(DeadLetter.topic == topic)
                    .order_by(DeadLetter.id.desc())
                    .limit(limit)
                )
            ).all()
        return [
            DeadItem(
                id=str(r.id),
                topic=r.topic,
                key=r.key,
                payload=r.payload,
                error=r.error,
                attempts=r.attempts,
            )
            for r in rows
        ]

    async def requeue_dead(self, topic: str, dead_id: str) -> bool:
        if not (dead_id.isascii() and dead_id.isdigit() and len(dead_id) <= 18):
            return False  # not an id of ours (it comes from a URL): nothing to requeue
        requeued = await self._work.run(_requeue, topic, int(dead_id))
        if requeued is None:
            return False
        if (schedule := self._schedules.get(topic)) is not None:
            schedule.add(requeued)
        self._wakeup(topic).set()
        return True

    # -- the exclusive mode ------------------------------------------------------------------------

    async def _schedule(self, topic: str) -> Schedule:
        """The topic's schedule, loaded from the table the first time (what a previous run left).
        Registered before the load, so what is published meanwhile is not missed."""
        if topic in self._loading:
            return await asyncio.shield(self._loading[topic])
        schedule = self._schedules[topic] = Schedule()

        async def load() -> Schedule:
            for entry in await self._work.run(_load, topic):
                schedule.add(entry)
            return schedule

        self._loading[topic] = asyncio.ensure_future(load())
        return await asyncio.shield(self._loading[topic])

    async def _consume_scheduled(
        self, topic: str, handler: Handler, stopping: asyncio.Event
    ) -> None:
        wakeup = self._wakeup(topic)
        schedule: Schedule | None = None
        while not stopping.is_set():
            wakeup.clear()
            if schedule is None:
                try:
                    schedule = await self._schedule(topic)
                except Exception:
                    logger.exception("loading queue %s failed; retrying", topic)
                    self._loading.pop(topic, None)
                    await asyncio.sleep(self._poll_interval)
                    continue
            entries = schedule.take(self._config.batch_size, self._clock())
            if entries:
                await self._run_scheduled(topic, schedule, entries, handler)
                continue
            timeout = self._poll_interval
            if (due := schedule.next_due()) is not None:
                timeout = max(0.0, min(timeout, due - self._clock()))
            waiters = [
                asyncio.create_task(wakeup.wait(), name="sql-queue-wakeup"),
                asyncio.create_task(stopping.wait(), name="sql-queue-stopping"),
            ]
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def _drain_scheduled(self, topic: str, handler: Handler) -> int:
        schedule = await self._schedule(topic)
        handled = 0
        while entries := schedule.take(self._config.batch_size, self._clock()):
            await self._run_scheduled(topic, schedule, entries, handler)
            handled += len(entries)
        await self._write_acks()
        return handled

    async def _run_scheduled(
        self, topic: str, schedule: Schedule, entries: list[Entry], handler: Handler
    ) -> None:
        items = [
            Item(id=str(e.id), topic=topic, key=e.key, payload=e.payload, attempts=e.attempts)
            for e in entries
        ]
        failures = await self._handle(items, handler)
        failed = [
            (entry, item) for entry, item in zip(entries, items, strict=True) if item.id in failures
        ]
        for entry, item in zip(entries, items, strict=True):
            if item.id not in failures:
                schedule.finish(entry)
                self._acks.append(entry.id)
        if not failed:
            self._ack_soon()
            return
        acks, self._acks = self._acks, []
        try:  # retries and dead letters are written at once, so a restart continues the count
            await self._work.run(
                _settle,
                [item for _, item in failed],
                failures,
                self._clock(),
                self._config.max_attempts,
                acks,
            )
        except Exception:
            logger.exception("recording failed attempts on queue %s failed", topic)
            self._acks.extend(acks)
        now = self._clock()
        for entry, item in failed:
            attempts = item.attempts + 1
            if attempts >= self._config.max_attempts:
                schedule.finish(entry)
            else:
                schedule.postpone(
                    entry, attempts=attempts, available_at=now + backoff_seconds(attempts)
                )

    def _ack_soon(self) -> None:
        if self._acks and (self._ack_writer is None or self._ack_writer.done()):
            self._ack_writer = asyncio.create_task(self._ack_later(), name="sql-queue-acks")

    async def _ack_later(self) -> None:
        await asyncio.sleep(ACK_DELAY)
        await self._write_acks()

    async def _write_acks(self) -> None:
        """Delete the acknowledged entries not yet written (the next publish usually does)."""
        if not self._acks:
            return
        acks, self._acks = self._acks, []
        try:
            await self._work.run(_delete, acks)
        except Exception:
            logger.exception("writing %d queue acknowledgements failed; they run again", len(acks))
            self._acks.extend(acks)

    async def release_claims(self) -> int:
        """Make every claimed entry claimable again. Only for a queue nobody else consumes (the
        embedded SQLite default after a crash), so restart does not wait out the old leases."""
        return await self._work.run(_release_claims)


@dataclass(frozen=True, slots=True)
class _HandledIds:
    done: frozenset[str]
    after_commit: Callable[[], Awaitable[None]]


def _publish(
    session: Session,
    rows: list[dict[str, object]],
    acks: Sequence[int],
    now_handled: Sequence[int],
    handlers: Mapping[str, InTransaction],
) -> tuple[list[str], list[_HandledIds]]:
    """Store the entries; hand those at `now_handled` to their topic's handler in a savepoint,
    and delete what it handled. A handler that raises leaves its entries queued."""
    ids = _insert(session, rows, acks)
    by_topic: dict[str, list[Item]] = {}
    for position in now_handled:
        row = rows[position]
        topic, key, payload = str(row["topic"]), str(row["key"]), row["payload"]
        assert isinstance(payload, bytes)
        by_topic.setdefault(topic, []).append(Item(ids[position], topic, key, payload))
    results: list[_HandledIds] = []
    for topic, items in by_topic.items():
        savepoint = session.begin_nested()
        try:
            handled = handlers[topic](session, items)
            savepoint.commit()
        except Exception:
            savepoint.rollback()
            logger.exception("handling %d entries of %s at once failed; queued", len(items), topic)
            continue
        done = frozenset(item.id for item in items if item.id not in handled.failed)
        _delete(session, [int(entry_id) for entry_id in done])
        results.append(_HandledIds(done, handled.after_commit))
    return ids, results


def _insert(session: Session, rows: list[dict[str, object]], acks: Sequence[int] = ()) -> list[str]:
    _delete(session, acks)
    return [str(row_id) for row_id in insert_ids(session, QueueEntry, rows)]


def _delete(session: Session, ids: Sequence[int]) -> None:
    for start in range(0, len(ids), _ACK_CHUNK):
        session.execute(
            delete(QueueEntry).where(QueueEntry.id.in_(ids[start : start + _ACK_CHUNK]))
        )


def _load(session: Session, topic: str) -> list[Entry]:
    rows = session.execute(
        select(
            QueueEntry.id,
            QueueEntry.key,
            QueueEntry.payload,
            QueueEntry.attempts,
            QueueEntry.available_at,
        )
        .where(QueueEntry.topic == topic)
        .order_by(QueueEntry.id)
    )
    return [Entry(row.id, row.key, row.payload, row.attempts, row.available_at) for row in rows]


def _claim(session: Session, topic: str, limit: int, now: float, lease: float) -> list[Item]:
    earlier = aliased(QueueEntry)
    blocked = (
        select(earlier.id)
        .where(
            earlier.topic == QueueEntry.topic,
            earlier.key == QueueEntry.key,
            earlier.id < QueueEntry.id,
        )
        .exists()
    )
    heads = session.scalars(
        select(QueueEntry.id)
        .where(
            QueueEntry.topic == topic,
            QueueEntry.available_at <= now,
            QueueEntry.claimed_until <= now,
            ~blocked,
        )
        .order_by(QueueEntry.id)
        .limit(limit)
    ).all()
    if not heads:
        return []
    claimed = session.execute(
        update(QueueEntry)
        .where(QueueEntry.id.in_(heads), QueueEntry.claimed_until <= now)
        .values(claimed_until=now + lease)
        .returning(QueueEntry.id, QueueEntry.key, QueueEntry.payload, QueueEntry.attempts)
    )
    items = [
        Item(id=str(row.id), topic=topic, key=row.key, payload=row.payload, attempts=row.attempts)
        for row in claimed
    ]
    items.sort(key=lambda item: int(item.id))
    return items


def _settle(
    session: Session,
    items: Sequence[Item],
    failures: dict[str, str],
    now: float,
    max_attempts: int,
    acks: Sequence[int] = (),
) -> None:
    """Acknowledge what succeeded; schedule a retry of what failed, or dead-letter it."""
    _delete(session, acks)
    done = [int(item.id) for item in items if item.id not in failures]
    if done:
        session.execute(delete(QueueEntry).where(QueueEntry.id.in_(done)))
    for item in items:
        if item.id not in failures:
            continue
        attempts = item.attempts + 1
        if attempts >= max_attempts:
            session.add(
                DeadLetter(
                    topic=item.topic,
                    key=item.key,
                    payload=item.payload,
                    error=failures[item.id],
                    attempts=attempts,
                )
            )
            session.execute(delete(QueueEntry).where(QueueEntry.id == int(item.id)))
            logger.error("queue item %s dead-lettered after %d attempts", item.id, attempts)
            continue
        session.execute(
            update(QueueEntry)
            .where(QueueEntry.id == int(item.id))
            .values(
                attempts=attempts,
                last_error=failures[item.id],
                claimed_until=0.0,
                available_at=now + backoff_seconds(attempts),
            )
        )


def _release_claims(session: Session) -> int:
    result = session.execute(
        update(QueueEntry).where(QueueEntry.claimed_until > 0).values(claimed_until=0.0)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _requeue(session: Session, topic: str, dead_id: int) -> Entry | None:
    dead = session.get(DeadLetter, dead_id)
    if dead is None or dead.topic != topic:
        return None
    entry = QueueEntry(
        topic=topic, key=dead.key, payload=dead.payload, available_at=0.0, claimed_until=0.0
    )
    session.add(entry)
    session.delete(dead)
    session.flush()
    return Entry(entry.id, entry.key, entry.payload)
