"""Delivering replies on SQLite and PostgreSQL: a reply is sent once however many queue entries
or consumers reach it, and a reply that a crash left queued or half-sent ends up sent or visibly
failed, never waiting forever."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

import storage.queue.sql
from channels.base import CursorStore, Delivery, DeliveryError, Emit, Outbound, Route
from routing.actions import OUTBOUND_TOPIC, Actions
from routing.events import Published
from routing.outbound import (
    CLAIM,
    INTERRUPTED,
    PROCESS,
    SINCE,
    Deliverer,
    DeliverySweep,
    Retry,
    Swept,
)
from storage.config import QueueConfig, StorageConfig
from storage.db import SessionFactory
from storage.models import Agent, Conversation, Customer, Identity, Message
from storage.queue.sql import SqlQueue
from storage.work import UnitOfWork
from tests.fixtures.stack import eventually, running_stack

_people = itertools.count(1)
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeChannel:
    """A channel that records what it sends. `failures` are raised by the next sends, in order;
    `hold` makes a send wait until it is set (a slow provider, or one a crash cuts off)."""

    type = "fake"

    def __init__(self, name: str = "contact") -> None:
        self.name = name
        self.calls = 0
        self.sent: list[Outbound] = []
        self.failures: list[Exception] = []
        self.hold: asyncio.Event | None = None
        self.sending = asyncio.Event()

    async def start(self, emit: Emit, cursors: CursorStore) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: Outbound) -> Delivery:
        self.calls += 1
        self.sending.set()
        await asyncio.sleep(0.02)  # a provider's round trip: room for a concurrent deliverer
        if self.hold is not None:
            await self.hold.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return Delivery(external_id=f"provider-{len(self.sent)}")

    def routes(self) -> Sequence[Route]:
        return []

    def status(self) -> Mapping[str, Any]:
        return {}


class Outbox:
    """Delivery on one database: deliverers (each as its own process would run it), the sweep,
    the embedded queue, a fake channel, a clock, and the events they published."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions
        self.clock = Clock()
        self.channel = FakeChannel()
        self.events: list[Published] = []
        self.works: list[UnitOfWork] = []
        self.queue = SqlQueue(sessions, QueueConfig(max_attempts=3), work=self.work())
        self.sweep = DeliverySweep(
            sessions, self.queue, self.record, work=self.work(), clock=self.clock
        )

    def work(self) -> UnitOfWork:
        self.works.append(UnitOfWork.for_sessions(self.sessions))
        return self.works[-1]

    def deliverer(self) -> Deliverer:
        return Deliverer(
            self.sessions,
            {"contact": self.channel},
            self.record,
            max_attempts=3,
            work=self.work(),
            clock=self.clock,
        )

    async def record(self, events: Sequence[Published]) -> None:
        self.events.extend(events)

    async def reply(
        self,
        *,
        status: str = "queued",
        age: timedelta = timedelta(0),
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """A reply stored as the inbox stores one, without publishing it (the lost publish)."""
        person = next(_people)
        async with self.sessions.begin() as session:
            customer = Customer(name=f"مشتری {person}")
            session.add(customer)
            await session.flush()
            session.add(
                Identity(
                    customer_id=customer.id, channel="contact", external_id=f"c{person}@example.com"
                )
            )
            conversation = Conversation(customer_id=customer.id, channel="contact", subject="سفارش")
            session.add(conversation)
            await session.flush()
            message = Message(
                conversation_id=conversation.id,
                channel="contact",
                direction="out",
                author_kind="agent",
                text="سفارش شما فردا می‌رسد",
                delivery_status=status,
                created_at=self.clock() - age,
                metadata_=metadata or {},
            )
            session.add(message)
            await session.flush()
            return message.id

    async def message(self, message_id: int) -> Message:
        async with self.sessions() as session:
            message = await session.get(Message, message_id)
            assert message is not None
            return message

    async def depth(self) -> int:
        return (await self.queue.stats(OUTBOUND_TOPIC)).depth

    async def close(self) -> None:
        await self.queue.stop()
        for work in self.works:
            await work.close()


@pytest.fixture
async def outbox(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Outbox]:
    monkeypatch.setattr(storage.queue.sql, "backoff_seconds", lambda attempts: 0.0)
    made = Outbox(sessions)
    try:
        yield made
    finally:
        await made.close()


async def test_a_reply_whose_publish_was_lost_is_sent_after_the_grace_period(
    outbox: Outbox,
) -> None:
    message_id = await outbox.reply()  # committed as queued; the process died before publishing
    deliverer = outbox.deliverer()

    outbox.clock.advance(seconds=90)
    assert await outbox.sweep.sweep() == Swept()  # it may still be on its way through the queue
    assert await outbox.depth() == 0

    outbox.clock.advance(seconds=60)
    assert await outbox.sweep.sweep() == Swept(republished=(message_id,))
    assert (
        await outbox.sweep.sweep() == Swept()
    )  # its grace starts again: one entry, not one a sweep
    assert await outbox.queue.drain(OUTBOUND_TOPIC, deliverer.handle) == 1

    assert [sent.message_id for sent in outbox.channel.sent] == [message_id]
    message = await outbox.message(message_id)
    assert (message.delivery_status, message.delivery_attempts) == ("sent", 1)
    assert message.metadata_ == {"provider_id": "provider-1"}
    outbox.clock.advance(hours=1)
    assert await outbox.sweep.sweep() == Swept()


async def test_concurrent_deliverers_of_one_reply_send_it_once(outbox: Outbox) -> None:
    """Two processes, or a queue entry and its copy: before the claim, each read 'queued' and
    each sent it."""
    message_id = await outbox.reply()
    deliverers = [outbox.deliverer() for _ in range(2)]

    ends = await asyncio.gather(*(d.deliver(message_id) for d in deliverers * 3))

    assert outbox.channel.calls == 1
    assert [sent.message_id for sent in outbox.channel.sent] == [message_id]
    assert set(ends) <= {"sent", "sending"}  # the others found it taken, or already sent
    message = await outbox.message(message_id)
    assert (message.delivery_status, message.delivery_attempts) == ("sent", 1)
    assert await outbox.deliverer().deliver(message_id) == "sent"  # a late entry changes nothing
    assert outbox.channel.calls == 1


async def test_a_transient_failure_goes_back_to_queued_and_the_queue_retries_it(
    outbox: Outbox,
) -> None:
    message_id = await outbox.reply()
    outbox.channel.failures.append(DeliveryError("provider answered 503"))
    deliverer = outbox.deliverer()

    with pytest.raises(Retry):
        await deliverer.deliver(message_id)
    message = await outbox.message(message_id)
    assert (message.delivery_status, message.delivery_error) == ("queued", "provider answered 503")
    outbox.clock.advance(seconds=30)
    assert await outbox.sweep.sweep() == Swept()  # the retry counts as freshly queued

    await outbox.queue.publish(OUTBOUND_TOPIC, "conversation:1", str(message_id).encode())
    await outbox.queue.drain(OUTBOUND_TOPIC, deliverer.handle)

    message = await outbox.message(message_id)
    assert (message.delivery_status, message.delivery_attempts) == ("sent", 2)
    assert outbox.channel.calls == 2 and len(outbox.channel.sent) == 1


async def test_a_send_a_crash_cut_short_ends_failed_and_the_agent_can_retry(
    outbox: Outbox,
) -> None:
    message_id = await outbox.reply()
    outbox.channel.hold = asyncio.Event()
    crashing = asyncio.create_task(outbox.deliverer().deliver(message_id), name="crashing-send")
    await outbox.channel.sending.wait()
    crashing.cancel()  # the process dies mid-send: nothing records the outcome
    with pytest.raises(asyncio.CancelledError):
        await crashing
    assert (await outbox.message(message_id)).delivery_status == "sending"

    outbox.clock.advance(minutes=4)
    assert await outbox.sweep.sweep() == Swept()  # a slow provider, for all we know
    outbox.clock.advance(minutes=2)
    assert await outbox.sweep.sweep() == Swept(interrupted=(message_id,))

    message = await outbox.message(message_id)
    assert (message.delivery_status, message.delivery_error) == ("failed", INTERRUPTED)
    assert [e.data["message"]["delivery_status"] for e in outbox.events] == ["failed"]
    assert len(outbox.channel.sent) == 0  # not sent again behind anyone's back

    async with outbox.sessions.begin() as session:
        agent = Agent(email="ali@example.com", name="علی", password_hash="-")
        session.add(agent)
    outbox.channel.hold = None
    actions = Actions(outbox.sessions, outbox.queue, outbox.record, work=outbox.work())
    await actions.retry_delivery(message_id, agent.id)
    await outbox.queue.drain(OUTBOUND_TOPIC, outbox.deliverer().handle)
    assert (await outbox.message(message_id)).delivery_status == "sent"
    assert [sent.message_id for sent in outbox.channel.sent] == [message_id]


async def test_a_send_that_outlives_the_timeout_still_records_how_it_ended(
    outbox: Outbox,
) -> None:
    message_id = await outbox.reply()
    outbox.channel.hold = asyncio.Event()
    slow = asyncio.create_task(outbox.deliverer().deliver(message_id), name="slow-send")
    await outbox.channel.sending.wait()
    outbox.clock.advance(minutes=6)
    assert await outbox.sweep.sweep() == Swept(interrupted=(message_id,))

    outbox.channel.hold.set()

    assert await slow == "sent"
    message = await outbox.message(message_id)
    assert (message.delivery_status, message.delivery_error) == ("sent", None)


async def test_the_outcome_of_a_send_superseded_by_a_retry_is_dropped(outbox: Outbox) -> None:
    message_id = await outbox.reply()
    outbox.channel.hold = asyncio.Event()
    slow = asyncio.create_task(outbox.deliverer().deliver(message_id), name="slow-send")
    await outbox.channel.sending.wait()
    outbox.clock.advance(minutes=6)
    await outbox.sweep.sweep()
    async with outbox.sessions.begin() as session:  # an agent retries, as `Actions` would
        message = await session.get(Message, message_id)
        assert message is not None
        message.delivery_status, message.delivery_error = "queued", None

    outbox.channel.failures.append(DeliveryError("mailbox full", permanent=True))
    outbox.channel.hold.set()

    assert await slow is None
    assert (await outbox.message(message_id)).delivery_status == "queued"  # the retry's to send


async def test_a_lone_process_restarting_takes_what_its_predecessor_left_at_once(
    outbox: Outbox,
) -> None:
    lost = await outbox.reply()
    half_sent = await outbox.reply(
        status="sending",
        metadata={SINCE: START.isoformat(), CLAIM: "a-process-that-died:1"},
    )
    ours = await outbox.reply(
        status="sending", metadata={SINCE: START.isoformat(), CLAIM: f"{PROCESS}:1"}
    )
    outbox.clock.advance(seconds=1)

    swept = await outbox.sweep.sweep(restarted=outbox.clock())

    assert swept == Swept(republished=(lost,), interrupted=(half_sent,))
    assert (await outbox.message(ours)).delivery_status == "sending"
    assert await outbox.queue.drain(OUTBOUND_TOPIC, outbox.deliverer().handle) == 1
    assert [sent.message_id for sent in outbox.channel.sent] == [lost]


async def test_the_runtime_sweeps_as_it_starts(
    storage_config: StorageConfig, sessions: SessionFactory
) -> None:
    """Left by a process that died: a reply never published and one it was sending. Both
    are older than the grace period and the timeout, so every deployment takes them at start."""
    outbox = Outbox(sessions)
    outbox.clock.now = datetime.now(UTC)
    try:
        lost = await outbox.reply(age=timedelta(minutes=10))
        half_sent = await outbox.reply(
            status="sending",
            age=timedelta(minutes=10),
            metadata={SINCE: (outbox.clock() - timedelta(minutes=10)).isoformat()},
        )
    finally:
        await outbox.close()

    async with running_stack(storage_config, roles=("router",)):

        async def outcomes() -> list[tuple[str | None, str | None]] | None:
            found = [await outbox.message(lost), await outbox.message(half_sent)]
            ended = [(m.delivery_status, m.delivery_error) for m in found]
            return ended if all(status == "failed" for status, _ in ended) else None

        ended = await eventually(outcomes)

    # The stack's web form cannot send replies, so the lost one fails saying why: it was tried.
    assert ended[0] == (
        "failed",
        "web form replies are sent by email, and no email channel is configured",
    )
    assert ended[1] == ("failed", INTERRUPTED)


async def test_sweeping_leaves_sent_and_failed_replies_alone(outbox: Outbox) -> None:
    for status in ("sent", "failed"):
        await outbox.reply(status=status, age=timedelta(days=1))
    async with outbox.sessions() as session:
        before = (await session.scalars(select(Message).order_by(Message.id))).all()
    outbox.clock.advance(days=1)

    assert await outbox.sweep.sweep(restarted=outbox.clock()) == Swept()

    async with outbox.sessions() as session:
        after = (await session.scalars(select(Message).order_by(Message.id))).all()
    assert [(m.delivery_status, m.metadata_) for m in after] == [
        (m.delivery_status, m.metadata_) for m in before
    ]
