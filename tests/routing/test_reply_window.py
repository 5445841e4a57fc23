"""The reply window on SQLite and PostgreSQL: on a channel that declares one, a free-form reply
goes out only within it after the customer's last message; outside it the agent is told why and
may send an approved template, which reaches the channel as `Outbound.template`."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from channels.base import TemplateMessage
from routing.actions import OUTBOUND_TOPIC, Actions, Invalid, WindowClosed
from routing.events import Published
from routing.outbound import Deliverer
from storage.config import QueueConfig
from storage.db import SessionFactory
from storage.models import Agent, Conversation, Customer, Identity, Message
from storage.queue.sql import SqlQueue
from storage.work import UnitOfWork
from tests.fixtures.window_channel import WindowChannel

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
_people = itertools.count(1)


class Desk:
    """An agent's actions and the deliverer on one database, with a clock and a window channel
    (`wa`) beside one without a window (`mail`)."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions
        self.now = START
        self.wa = WindowChannel("wa")
        self.mail = WindowChannel("mail", window=None, templates=())
        channels = {"wa": self.wa, "mail": self.mail}
        self.works = [UnitOfWork.for_sessions(sessions) for _ in range(3)]
        self.queue = SqlQueue(sessions, QueueConfig(), work=self.works[0])
        self.events: list[Published] = []
        self.actions = Actions(
            sessions,
            self.queue,
            self.record,
            clock=lambda: self.now,
            work=self.works[1],
            channels=channels,
        )
        self.deliverer = Deliverer(
            sessions, channels, self.record, work=self.works[2], clock=lambda: self.now
        )

    async def record(self, events: list[Published]) -> None:
        self.events.extend(events)

    async def conversation(
        self,
        channel: str = "wa",
        *,
        wrote: timedelta | None = timedelta(hours=1),
        thread_id: str | None = None,
    ) -> tuple[int, int]:
        """A conversation whose customer last wrote `wrote` ago (never, if None); returns its
        id and an agent's."""
        person = next(_people)
        async with self.sessions.begin() as session:
            agent = Agent(email=f"agent{person}@example.com", name="سارا", password_hash="x")
            customer = Customer(name=f"مشتری {person}")
            session.add_all([agent, customer])
            await session.flush()
            session.add(
                Identity(customer_id=customer.id, channel=channel, external_id=f"98912{person:07}")
            )
            conversation = Conversation(
                customer_id=customer.id, channel=channel, thread_id=thread_id
            )
            session.add(conversation)
            await session.flush()
            if wrote is not None:
                session.add(
                    Message(
                        conversation_id=conversation.id,
                        channel=channel,
                        external_id=f"wamid.in.{person}",
                        direction="in",
                        author_kind="customer",
                        text="سلام، سفارشم کجاست؟",
                        created_at=self.now - wrote,
                        metadata_={"received_at": (self.now - wrote).isoformat()},
                    )
                )
            return conversation.id, agent.id

    async def deliver_all(self) -> int:
        return await self.queue.drain(OUTBOUND_TOPIC, self.deliverer.handle)

    async def outbound(self, conversation_id: int) -> list[Message]:
        async with self.sessions() as session:
            return list(
                (
                    await session.scalars(
                        select(Message)
                        .where(Message.conversation_id == conversation_id)
                        .where(Message.direction == "out")
                        .order_by(Message.id)
                    )
                ).all()
            )

    async def close(self) -> None:
        await self.queue.stop()
        for work in self.works:
            await work.close()


@pytest.fixture
async def desk(sessions: SessionFactory) -> AsyncIterator[Desk]:
    made = Desk(sessions)
    try:
        yield made
    finally:
        await made.close()


async def test_a_reply_within_the_window_goes_out(desk: Desk) -> None:
    conversation_id, agent_id = await desk.conversation(wrote=timedelta(hours=23, minutes=59))

    window = await desk.actions.reply_window(conversation_id)
    assert window.open
    assert window.closes_at == START + timedelta(minutes=1)

    await desk.actions.reply(conversation_id, agent_id, "فردا می‌رسد")
    assert await desk.deliver_all() == 1
    assert [(o.text, o.template) for o in desk.wa.sent] == [("فردا می‌رسد", None)]


async def test_a_reply_after_the_window_is_refused_with_when_it_closed(desk: Desk) -> None:
    conversation_id, agent_id = await desk.conversation(wrote=timedelta(hours=25))

    with pytest.raises(WindowClosed) as refused:
        await desk.actions.reply(conversation_id, agent_id, "فردا می‌رسد")

    closed_at = START - timedelta(hours=1)
    assert refused.value.closed_at == closed_at
    assert closed_at.isoformat() in str(refused.value)
    assert "template" in str(refused.value)
    assert await desk.outbound(conversation_id) == []  # nothing stored, nothing queued
    assert (await desk.queue.stats(OUTBOUND_TOPIC)).depth == 0
    assert not desk.events
    window = await desk.actions.reply_window(conversation_id)
    assert (window.open, window.closes_at) == (False, closed_at)


async def test_the_window_is_measured_from_when_the_customer_wrote_not_when_it_was_stored(
    desk: Desk,
) -> None:
    """A queue backlog stored the message late; the provider counts from when it was sent."""
    conversation_id, agent_id = await desk.conversation(wrote=timedelta(hours=2))
    async with desk.sessions.begin() as session:
        message = await session.scalar(
            select(Message).where(Message.conversation_id == conversation_id)
        )
        assert message is not None
        message.metadata_ = {"received_at": (START - timedelta(hours=24, seconds=1)).isoformat()}

    with pytest.raises(WindowClosed):
        await desk.actions.reply(conversation_id, agent_id, "سلام")


async def test_a_private_note_is_allowed_after_the_window(desk: Desk) -> None:
    conversation_id, agent_id = await desk.conversation(wrote=timedelta(days=3))

    note = await desk.actions.reply(conversation_id, agent_id, "باید قالب بفرستیم", private=True)

    assert note.private and note.delivery_status is None
    assert await desk.deliver_all() == 0
    assert desk.wa.sent == []


async def test_a_conversation_the_customer_never_wrote_in_has_no_open_window(
    desk: Desk,
) -> None:
    conversation_id, agent_id = await desk.conversation(wrote=None)

    window = await desk.actions.reply_window(conversation_id)
    assert (window.open, window.closes_at) == (False, None)
    with pytest.raises(WindowClosed, match="no message yet"):
        await desk.actions.reply(conversation_id, agent_id, "سلام")


async def test_a_channel_without_a_window_always_takes_replies(desk: Desk) -> None:
    conversation_id, agent_id = await desk.conversation("mail", wrote=timedelta(days=30))

    window = await desk.actions.reply_window(conversation_id)
    assert (window.open, window.closes_at) == (True, None)
    await desk.actions.reply(conversation_id, agent_id, "پاسخ دیرهنگام")
    assert await desk.deliver_all() == 1
    assert [o.text for o in desk.mail.sent] == ["پاسخ دیرهنگام"]


async def test_a_template_goes_out_after_the_window_and_its_outbound_carries_it(
    desk: Desk,
) -> None:
    conversation_id, agent_id = await desk.conversation(wrote=timedelta(days=2))

    message = await desk.actions.send_template(
        conversation_id, agent_id, "order_update", [" ۱۲۳۴ ", "دوشنبه"]
    )

    assert message.text == "[template: order_update] سفارش ۱۲۳۴ شما در تاریخ دوشنبه ارسال می‌شود."
    assert message.metadata_["template"] == {
        "name": "order_update",
        "language": "fa",
        "parameters": ["۱۲۳۴", "دوشنبه"],
    }
    assert "message.created" in [e.type for e in desk.events]
    assert await desk.deliver_all() == 1
    [sent] = desk.wa.sent
    assert sent.template == TemplateMessage("order_update", "fa", ("۱۲۳۴", "دوشنبه"))
    assert sent.recipient.external_id.startswith("98912")
    [stored] = await desk.outbound(conversation_id)
    assert (stored.delivery_status, stored.author_agent_id) == ("sent", agent_id)


async def test_a_template_without_parameters_reads_as_its_name(desk: Desk) -> None:
    conversation_id, agent_id = await desk.conversation(wrote=timedelta(days=2))

    message = await desk.actions.send_template(conversation_id, agent_id, "follow_up", [])

    assert message.text == "[template: follow_up]"
    assert await desk.deliver_all() == 1
    assert desk.wa.sent[0].template == TemplateMessage("follow_up", "en", ())


@pytest.mark.parametrize(
    ("name", "parameters", "reason"),
    [
        ("no_such", ["1", "2"], "no template 'no_such' on channel 'wa' (it has: order_update"),
        ("order_update", ["1234"], "takes 2 (order, date), not 1"),
        ("order_update", ["1234", "a", "b"], "takes 2 (order, date), not 3"),
        ("order_update", ["1234", "   "], "parameters[2]: empty"),
        ("order_update", ["12\n34", "x"], "parameters[1]: no line breaks"),
        ("order_update", ["x" * 1025, "x"], "parameters[1]: at most 1024"),
        ("follow_up", ["extra"], "takes 0, not 1"),
    ],
)
async def test_a_bad_template_send_is_refused_and_nothing_is_stored(
    desk: Desk, name: str, parameters: list[str], reason: str
) -> None:
    conversation_id, agent_id = await desk.conversation(wrote=timedelta(days=2))

    with pytest.raises(Invalid) as refused:
        await desk.actions.send_template(conversation_id, agent_id, name, parameters)

    assert reason in str(refused.value)
    assert await desk.outbound(conversation_id) == []
    assert (await desk.queue.stats(OUTBOUND_TOPIC)).depth == 0


async def test_a_channel_without_templates_refuses_a_template(desk: Desk) -> None:
    conversation_id, agent_id = await desk.conversation("mail")

    with pytest.raises(Invalid, match="channel 'mail' has no templates"):
        await desk.actions.send_template(conversation_id, agent_id, "order_update", ["1", "2"])


async def test_a_failed_free_text_reply_is_not_retried_after_the_window_but_a_template_is(
    desk: Desk,
) -> None:
    conversation_id, agent_id = await desk.conversation(wrote=timedelta(hours=23))
    reply = await desk.actions.reply(conversation_id, agent_id, "سلام")
    template = await desk.actions.send_template(conversation_id, agent_id, "follow_up", [])
    async with desk.sessions.begin() as session:
        for message_id in (reply.id, template.id):
            message = await session.get(Message, message_id)
            assert message is not None
            message.delivery_status = "failed"
    desk.now += timedelta(hours=2)

    with pytest.raises(WindowClosed):
        await desk.actions.retry_delivery(reply.id, agent_id)
    retried = await desk.actions.retry_delivery(template.id, agent_id)

    assert retried.delivery_status == "queued"


async def test_the_customer_writing_again_reopens_the_window(desk: Desk) -> None:
    conversation_id, agent_id = await desk.conversation(wrote=timedelta(days=2))
    async with desk.sessions.begin() as session:
        count = await session.scalar(select(func.count()).select_from(Message))
        session.add(
            Message(
                conversation_id=conversation_id,
                channel="wa",
                external_id=f"wamid.again.{count}",
                direction="in",
                author_kind="customer",
                text="هنوز نرسیده",
                created_at=desk.now - timedelta(minutes=5),
            )
        )

    await desk.actions.reply(conversation_id, agent_id, "پیگیری می‌کنم")

    window = await desk.actions.reply_window(conversation_id)
    assert window.closes_at == START + timedelta(hours=23, minutes=55)


async def test_a_public_reply_to_a_comment_has_no_window(desk: Desk) -> None:
    conversation_id, agent_id = await desk.conversation(
        wrote=timedelta(days=3), thread_id="comments:post-1:author-7"
    )
    assert (await desk.actions.reply_window(conversation_id)).open
    await desk.actions.reply(conversation_id, agent_id, "ممنون از نظر شما")
    assert await desk.deliver_all() == 1
