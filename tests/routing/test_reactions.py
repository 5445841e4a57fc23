"""Reactions run inside the unit of work that recorded the events (on SQLite and PostgreSQL):
what they change commits or rolls back with it, their own events are reacted to in turn, a
chain of reactions stops instead of looping, and a message they mark is queued for delivery."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from routing.actions import OUTBOUND_TOPIC
from routing.events import MAX_REACTION_ROUNDS, REACTIONS, EventLog, Happened, Published
from routing.outbound import queue_marked_deliveries
from storage.db import SessionFactory
from storage.models import Customer, Event, Label
from storage.work import UnitOfWork
from tests.fixtures.stack import eventually


def _record(session: Session, type_: str) -> tuple[None, EventLog]:
    log = EventLog(session)
    log.add(type_, None, {"note": "شکایت مشتری ثبت شد"}, customer_id=None)
    return None, log


async def _events(sessions: SessionFactory) -> list[str]:
    async with sessions() as session:
        return list(await session.scalars(select(Event.type).order_by(Event.id)))


async def test_a_reaction_sees_the_events_and_its_changes_commit_with_them(
    sessions: SessionFactory,
) -> None:
    seen: list[list[str]] = []

    def label_complaints(session: Session, log: EventLog, events: Sequence[Happened]) -> None:
        seen.append([e.type for e in events])
        for event in events:
            if event.type == "customer.complained":
                session.add(Label(name="شکایت"))
                log.add("label.created", None, {"name": "شکایت"})

    work = UnitOfWork.for_sessions(sessions)
    work.session_info[REACTIONS] = (label_complaints,)
    try:
        _, log = await work.run(_record, "customer.complained")
    finally:
        await work.close()
    assert seen == [["customer.complained"], ["label.created"]]
    assert await _events(sessions) == ["customer.complained", "label.created"]
    assert [p.type for p in log.published()] == ["customer.complained", "label.created"]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Label)) == 1


async def test_a_failing_reaction_rolls_the_whole_unit_back(sessions: SessionFactory) -> None:
    def broken(session: Session, log: EventLog, events: Sequence[Happened]) -> None:
        session.add(Customer(name="نیمه‌کاره"))
        raise RuntimeError("rule failed")

    work = UnitOfWork.for_sessions(sessions)
    work.session_info[REACTIONS] = (broken,)
    try:
        with pytest.raises(RuntimeError):
            await work.run(_record, "customer.complained")
    finally:
        await work.close()
    assert await _events(sessions) == []
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_a_chain_of_reactions_stops_instead_of_looping(sessions: SessionFactory) -> None:
    def echo(session: Session, log: EventLog, events: Sequence[Happened]) -> None:
        for _ in events:
            log.add("echo", None, {})

    work = UnitOfWork.for_sessions(sessions)
    work.session_info[REACTIONS] = (echo,)
    try:
        await work.run(_record, "start")
    finally:
        await work.close()
    assert await _events(sessions) == ["start"] + ["echo"] * MAX_REACTION_ROUNDS


async def test_units_without_reactions_record_only_their_events(sessions: SessionFactory) -> None:
    work = UnitOfWork.for_sessions(sessions)
    try:
        await work.run(_record, "customer.complained")
    finally:
        await work.close()
    assert await _events(sessions) == ["customer.complained"]


class _Queue:
    def __init__(self, refuse: bool = False) -> None:
        self.published: list[tuple[str, str, bytes]] = []
        self.refuse = refuse

    async def publish(self, topic: str, key: str, payload: bytes) -> None:
        if self.refuse:
            raise ConnectionError("queue down")
        self.published.append((topic, key, payload))


def _created(message_id: int, *, deliver: bool) -> Published:
    data: dict[str, object] = {"message": {"id": message_id, "text": "از خرید شما راضی بودید؟"}}
    if deliver:
        data["deliver"] = True
    return Published(
        id=message_id,
        type="message.created",
        conversation_id=7,
        team_id=None,
        assignee_id=None,
        data=data,
        created_at=datetime(2026, 11, 23, tzinfo=UTC),
    )


async def test_marked_messages_are_queued_for_delivery_and_others_are_not() -> None:
    queue = _Queue()
    listener = queue_marked_deliveries(queue)  # type: ignore[arg-type]
    await listener([_created(1, deliver=False), _created(2, deliver=True)])
    await eventually(lambda: _some(queue.published))
    assert queue.published == [(OUTBOUND_TOPIC, "conversation:7", b"2")]
    # A refusing queue loses nothing: the message stays queued for the sweep, nothing raises.
    await queue_marked_deliveries(_Queue(refuse=True))([_created(3, deliver=True)])  # type: ignore[arg-type]


async def test_deliver_refuses_a_message_the_unit_did_not_record(
    sessions: SessionFactory,
) -> None:
    def deliver_unknown(session: Session) -> None:
        _, log = _record(session, "customer.complained")
        log.deliver(5)

    work = UnitOfWork.for_sessions(sessions)
    try:
        with pytest.raises(ValueError, match="message 5"):
            await work.run(deliver_unknown)
    finally:
        await work.close()
    assert await _events(sessions) == []


async def _some(items: list[tuple[str, str, bytes]]) -> bool:
    return bool(items)
