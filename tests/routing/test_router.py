"""The router on SQLite and PostgreSQL: dedupe, identity, threading, assignment, events."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from channels.base import Inbound, Sender
from inbox.accounts import create_agent
from routing.actions import Actions
from routing.config import RoutingConfig
from routing.events import Published
from routing.router import Router
from storage.config import QueueConfig
from storage.db import SessionFactory
from storage.models import Agent, Conversation, Customer, Event, Message
from storage.queue.sql import SqlQueue

_ids = itertools.count(1)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def inbound(
    text: str,
    *,
    channel: str = "contact",
    who: str = "reza@example.com",
    email: str = "",
    phone: str = "",
    thread: str | None = None,
    name: str = "رضا",
) -> Inbound:
    return Inbound(
        channel=channel,
        external_id=f"m{next(_ids)}",
        sender=Sender(external_id=who, name=name, email=email, phone=phone),
        text=text,
        thread_id=thread,
    )


class Desk:
    """A router and the agent actions on one database, with a clock and recorded events."""

    def __init__(
        self,
        sessions: SessionFactory,
        config: RoutingConfig | None = None,
        channel_teams: dict[str, str | None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = Clock()
        self.events: list[Published] = []
        self.router = Router(
            sessions,
            config or RoutingConfig(),
            channel_teams=channel_teams or {},
            notify=self.record,
            clock=self.clock,
        )
        self.actions = Actions(
            sessions, SqlQueue(sessions, QueueConfig()), self.record, clock=self.clock
        )

    async def record(self, events: Sequence[Published]) -> None:
        self.events.extend(events)

    async def agent(self, email: str, *, capacity: int = 10, online: bool = True) -> int:
        async with self.sessions.begin() as session:
            agent = await create_agent(
                session,
                email=email,
                name=email,
                capacity=capacity,
                password="a long enough password",
            )
        if online:
            await self.actions.set_presence(agent.id, "online")
        return agent.id

    async def count(self, model: type) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    async def conversation(self, conversation_id: int) -> Conversation:
        async with self.sessions() as session:
            found = await session.get(Conversation, conversation_id)
            assert found is not None
            return found


@pytest.fixture
async def desk(sessions: SessionFactory) -> Desk:
    desk = Desk(sessions)
    await desk.router.start()
    return desk


async def test_a_redelivered_message_is_stored_once(desk: Desk) -> None:
    message = inbound("سلام")
    first = await desk.router.route(message)
    again = await desk.router.route(message)
    assert not first.duplicate and again.duplicate
    assert await desk.count(Message) == 1


async def test_the_same_email_on_another_channel_is_the_same_customer(desk: Desk) -> None:
    a = await desk.router.route(inbound("از فرم", who="reza@example.com", email="reza@example.com"))
    b = await desk.router.route(
        inbound("از تلگرام", channel="telegram", who="tg:42", email="REZA@example.com ")
    )
    c = await desk.router.route(
        inbound("از واتس‌اپ", channel="whatsapp", who="wa:1", phone="+98 912 123 4567")
    )
    d = await desk.router.route(
        inbound(
            "باز از فرم", who="other@example.com", email="other@example.com", phone="09121234567"
        )
    )
    assert a.customer_id == b.customer_id
    assert c.customer_id != a.customer_id
    assert d.customer_id == c.customer_id  # linked by the phone number, written differently
    assert await desk.count(Customer) == 2
    assert a.conversation_id != b.conversation_id  # one conversation per channel


async def test_the_open_conversation_continues_and_provider_threads_stay_apart(
    desk: Desk,
) -> None:
    one = await desk.router.route(inbound("اول"))
    two = await desk.router.route(inbound("دوم"))
    assert one.conversation_id == two.conversation_id
    t1 = await desk.router.route(inbound("chat a", channel="tg", who="u1", thread="chat-1"))
    t2 = await desk.router.route(inbound("chat b", channel="tg", who="u1", thread="chat-2"))
    t3 = await desk.router.route(inbound("chat a again", channel="tg", who="u1", thread="chat-1"))
    assert t1.conversation_id == t3.conversation_id != t2.conversation_id


async def test_a_reply_after_resolution_reopens_within_the_window_else_starts_anew(
    desk: Desk,
) -> None:
    agent = await desk.agent("ali@example.com")
    first = await desk.router.route(inbound("مشکل دارم"))
    assert first.conversation_id is not None
    await desk.actions.set_status(first.conversation_id, "resolved", actor_agent_id=agent)
    desk.clock.now += timedelta(hours=71)
    reopened = await desk.router.route(inbound("هنوز حل نشده"))
    assert reopened.conversation_id == first.conversation_id
    assert (await desk.conversation(first.conversation_id)).status == "open"
    assert "conversation.reopened" in [e.type for e in desk.events]
    await desk.actions.set_status(first.conversation_id, "resolved", actor_agent_id=agent)
    desk.clock.now += timedelta(hours=73)
    fresh = await desk.router.route(inbound("سوال تازه"))
    assert fresh.conversation_id != first.conversation_id


async def test_a_customer_message_wakes_a_snoozed_or_pending_conversation(desk: Desk) -> None:
    agent = await desk.agent("ali@example.com")
    routed = await desk.router.route(inbound("سلام"))
    assert routed.conversation_id is not None
    await desk.actions.set_status(
        routed.conversation_id,
        "snoozed",
        actor_agent_id=agent,
        snoozed_until=desk.clock.now + timedelta(days=1),
    )
    await desk.router.route(inbound("کسی هست؟"))
    assert (await desk.conversation(routed.conversation_id)).status == "open"


async def test_snoozed_conversations_reopen_when_their_time_comes(desk: Desk) -> None:
    agent = await desk.agent("ali@example.com")
    routed = await desk.router.route(inbound("سلام"))
    assert routed.conversation_id is not None
    await desk.actions.set_status(
        routed.conversation_id,
        "snoozed",
        actor_agent_id=agent,
        snoozed_until=desk.clock.now + timedelta(hours=1),
    )
    await desk.router.tick()
    assert (await desk.conversation(routed.conversation_id)).status == "snoozed"
    desk.clock.now += timedelta(hours=2)
    await desk.router.tick()
    assert (await desk.conversation(routed.conversation_id)).status == "open"


async def test_least_loaded_agent_gets_it_and_capacity_is_respected(desk: Desk) -> None:
    ali = await desk.agent("ali@example.com", capacity=1)
    sara = await desk.agent("sara@example.com", capacity=2)
    results = [await desk.router.route(inbound("سلام", who=f"c{i}@example.com")) for i in range(4)]
    assignees = [r.assignee_id for r in results]
    assert sorted(a for a in assignees if a) == sorted([ali, sara, sara])
    assert assignees[3] is None  # everyone is full: it waits in the queue
    async with desk.sessions() as session:
        waiting = await session.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.assignee_id.is_(None))
        )
    assert waiting == 1


async def test_waiting_conversations_go_to_an_agent_who_comes_online(desk: Desk) -> None:
    first = await desk.router.route(inbound("سلام", who="a@example.com"))
    second = await desk.router.route(inbound("سلام", who="b@example.com"))
    assert first.assignee_id is None and second.assignee_id is None
    ali = await desk.agent("ali@example.com", capacity=1)
    assert first.conversation_id and second.conversation_id
    assert (await desk.conversation(first.conversation_id)).assignee_id == ali  # waited longest
    assert (await desk.conversation(second.conversation_id)).assignee_id is None


async def test_freeing_capacity_assigns_the_next_waiting_conversation(desk: Desk) -> None:
    ali = await desk.agent("ali@example.com", capacity=1)
    first = await desk.router.route(inbound("سلام", who="a@example.com"))
    second = await desk.router.route(inbound("سلام", who="b@example.com"))
    assert first.assignee_id == ali and second.assignee_id is None
    assert first.conversation_id and second.conversation_id
    await desk.actions.set_status(first.conversation_id, "resolved", actor_agent_id=ali)
    assert (await desk.conversation(second.conversation_id)).assignee_id == ali


async def test_the_owner_gets_the_customer_back_and_keeps_them(desk: Desk) -> None:
    ali = await desk.agent("ali@example.com")
    sara = await desk.agent("sara@example.com")
    first = await desk.router.route(inbound("سفارش ۱۲۳", who="reza@example.com"))
    assert first.conversation_id and first.assignee_id == ali
    await desk.actions.reply(first.conversation_id, ali, "بررسی می‌کنم")
    await desk.actions.set_status(first.conversation_id, "resolved", actor_agent_id=ali)
    desk.clock.now += timedelta(days=10)
    other = await desk.router.route(inbound("سلام", who="someone@example.com"))
    assert other.assignee_id == sara  # never assigned yet: the longest idle
    # now ali and sara carry one each and sara was assigned last, yet reza goes to his owner
    desk.clock.now += timedelta(minutes=1)
    await desk.router.route(inbound("سلام", who="third@example.com"))
    later = await desk.router.route(inbound("دوباره من", who="reza@example.com"))
    assert later.conversation_id != first.conversation_id
    assert later.assignee_id == ali


async def test_an_agent_going_offline_hands_open_conversations_on(desk: Desk) -> None:
    ali = await desk.agent("ali@example.com")
    routed = await desk.router.route(inbound("سلام"))
    assert routed.conversation_id and routed.assignee_id == ali
    sara = await desk.agent("sara@example.com")
    await desk.actions.set_presence(ali, "offline")
    assert (await desk.conversation(routed.conversation_id)).assignee_id == sara
    await desk.actions.set_presence(sara, "away")  # away keeps what it has
    assert (await desk.conversation(routed.conversation_id)).assignee_id == sara
    await desk.actions.set_presence(sara, "offline")  # nobody left: back to the queue
    assert (await desk.conversation(routed.conversation_id)).assignee_id is None


async def test_rules_and_channel_teams_pick_the_team_queue(sessions: SessionFactory) -> None:
    config = RoutingConfig.model_validate(
        {
            "teams": [
                {"name": "sales", "members": ["sam@example.com"]},
                {"name": "support", "members": ["sue@example.com"]},
            ],
            "rules": [{"team": "sales", "keywords": ["قیمت"]}],
        }
    )
    desk = Desk(sessions, config, channel_teams={"contact": "support"})
    sam = await desk.agent("sam@example.com")
    sue = await desk.agent("sue@example.com")
    await desk.router.start()  # after the agents exist, so membership resolves
    priced = await desk.router.route(inbound("قيمت محصول چند است؟", who="a@example.com"))
    broken = await desk.router.route(inbound("دستگاه خراب است", who="b@example.com"))
    assert priced.assignee_id == sam
    assert broken.assignee_id == sue


async def test_every_change_is_an_event_in_the_log(desk: Desk) -> None:
    ali = await desk.agent("ali@example.com")
    sara = await desk.agent("sara@example.com")
    routed = await desk.router.route(inbound("سلام"))
    conversation = routed.conversation_id
    assert conversation is not None
    await desk.actions.reply(conversation, ali, "یادداشت داخلی", private=True)
    await desk.actions.assign(conversation, actor_agent_id=ali, agent_id=sara)
    await desk.actions.set_status(conversation, "pending", actor_agent_id=sara)
    async with desk.sessions() as session:
        logged = (
            await session.scalars(
                select(Event.type).where(Event.conversation_id == conversation).order_by(Event.id)
            )
        ).all()
        author = await session.get(Agent, sara)
    assert author is not None
    assert logged == [
        "conversation.created",
        "message.created",
        "conversation.assigned",
        "note.created",
        "conversation.assigned",
        "notification.created",  # sara was assigned by ali
        "conversation.status_changed",
    ]
    assert [e.type for e in desk.events if e.conversation_id == conversation] == logged


async def test_one_failing_message_fails_alone_and_the_others_events_are_logged(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    import routing.router

    await desk.agent("ali@example.com")
    real = routing.router.resolve_customers

    def poisoned(session, inbounds, *, now):  # type: ignore[no-untyped-def]
        if any(i.text == "poison" for i in inbounds):
            raise ValueError("cannot route this one")
        return real(session, inbounds, now=now)

    monkeypatch.setattr(routing.router, "resolve_customers", poisoned)
    desk.events.clear()
    batch = [inbound("سلام", who=f"c{i}@example.com") for i in range(3)]
    batch.insert(1, inbound("poison", who="bad@example.com"))
    results = await asyncio.gather(*(desk.router.route(m) for m in batch), return_exceptions=True)
    assert isinstance(results[1], ValueError)
    assert all(not isinstance(r, BaseException) and r.message_id for r in results[:1] + results[2:])
    assert await desk.count(Message) == 3
    async with desk.sessions() as session:
        logged = set((await session.scalars(select(Event.id))).all())
    published = [e for e in desk.events if e.type == "message.created"]
    assert len(published) == 3
    assert {e.id for e in desk.events} <= logged  # every published event is in the log


async def test_routing_inside_the_publishing_transaction(desk: Desk) -> None:
    """The embedded queue routes entries in the commit that queues them: a malformed entry
    fails alone, the rest is stored, and the events go out only when told (after commit)."""
    from storage.queue import Item
    from storage.work import UnitOfWork

    good = inbound("سفارشم هنوز نرسیده", who="sara@example.com", email="sara@example.com")
    items = [
        Item(id="1", topic="inbound", key="a", payload=good.to_json()),
        Item(id="2", topic="inbound", key="b", payload=b"{not json"),
    ]
    work = UnitOfWork.for_sessions(desk.sessions)
    try:
        handled = await work.run(desk.router.handle_in_transaction, items)
    finally:
        await work.close()
    assert set(handled.failed) == {"2"} and "JSONDecodeError" in handled.failed["2"]
    assert await desk.count(Message) == 1
    assert desk.events == []  # nothing announced before the queue says it committed
    await handled.after_commit()
    assert [e.type for e in desk.events][:2] == ["conversation.created", "message.created"]


async def test_the_message_event_carries_the_customers_files(desk: Desk) -> None:
    from channels.base import Attachment

    message = Inbound(
        channel="contact",
        external_id="with-files",
        sender=Sender(external_id="sara@example.com", email="sara@example.com"),
        text="فاکتور را پیوست کردم",
        attachments=(Attachment("فاکتور.pdf", "application/pdf", 1234, "/api/v1/attachments/abc"),),
    )
    await desk.router.route(message)
    [created] = [e for e in desk.events if e.type == "message.created"]
    assert created.data["message"]["attachments"] == [
        {
            "name": "فاکتور.pdf",
            "content_type": "application/pdf",
            "size": 1234,
            "url": "/api/v1/attachments/abc",
        }
    ]
