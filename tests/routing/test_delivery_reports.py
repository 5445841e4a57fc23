"""Finding the reply a delivery report is about: our token first, else the indexed provider id,
on both backends; a report on mail we never sent changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from channels.base import Inbound, Sender
from routing.delivery_reports import settle_delivery_reports
from routing.events import EventLog
from storage.db import SessionFactory
from storage.models import Message
from tests.fixtures.services import unique
from tests.routing.test_outbound import Outbox

FOREIGN_ID = "0100018c5f3e-7d1a@email.amazonses.com"
"""A Message-ID a provider chose (not `pk.…`): only the provider id finds it."""


@pytest.fixture(name="outbox")
async def own_outbox(sessions: SessionFactory) -> AsyncIterator[Outbox]:
    made = Outbox(sessions)
    try:
        yield made
    finally:
        await made.close()


def bounce(original: str) -> Inbound:
    return Inbound(
        channel="contact",
        external_id=unique("bounce"),
        sender=Sender(external_id="mailer-daemon@mx.example.com"),
        text="",
        metadata={
            "kind": "delivery_report",
            "report": "failed",
            "original_message_id": original,
            "recipient": "maryam@example.com",
            "status": "5.1.1",
            "diagnostic": "550 5.1.1 User unknown",
            "permanent": "true",
        },
    )


def _settle(session: Session, inbounds: list[Inbound]) -> list[Inbound]:
    return settle_delivery_reports(session, inbounds, EventLog(session))


async def test_a_report_finds_a_reply_by_its_provider_id(outbox: Outbox) -> None:
    reply = await outbox.reply(status="sent", metadata={"provider_id": FOREIGN_ID})
    other = await outbox.reply(status="sent", metadata={"provider_id": "someone-else@example.com"})
    customer = Inbound(
        channel="contact", external_id="m1", sender=Sender(external_id="x"), text="سلام"
    )
    rest = await outbox.work().run(_settle, [bounce(FOREIGN_ID), customer, bounce("nobody@x")])
    assert rest == [customer]  # reports never reach the conversation steps
    failed = await outbox.message(reply)
    assert failed.delivery_status == "failed"
    assert failed.delivery_error == "bounced (5.1.1) for maryam@example.com: 550 5.1.1 User unknown"
    assert failed.provider_id == FOREIGN_ID
    assert (await outbox.message(other)).delivery_status == "sent"


async def test_the_provider_id_lookup_uses_its_index(outbox: Outbox) -> None:
    await outbox.reply(status="sent", metadata={"provider_id": FOREIGN_ID})
    query = select(Message.id).where(Message.provider_id == FOREIGN_ID)
    async with outbox.sessions() as session:
        dialect = session.bind.dialect.name
        compiled = query.compile(
            dialect=session.bind.dialect, compile_kwargs={"literal_binds": True}
        )
        if dialect == "postgresql":  # a tiny table: make the planner show what it can use
            await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = " ".join(
            str(row)
            for row in await session.execute(
                text(
                    f"EXPLAIN QUERY PLAN {compiled}"
                    if dialect == "sqlite"
                    else f"EXPLAIN {compiled}"
                )
            )
        )
    assert "ix_messages_provider_id" in plan, plan


async def test_setting_the_metadata_keeps_the_provider_id_column_in_step(outbox: Outbox) -> None:
    reply = await outbox.reply(status="sent")
    assert (await outbox.message(reply)).provider_id is None
    async with outbox.sessions.begin() as session:
        message = await session.get(Message, reply)
        assert message is not None
        message.metadata_ = {**message.metadata_, "provider_id": FOREIGN_ID}
    assert (await outbox.message(reply)).provider_id == FOREIGN_ID
