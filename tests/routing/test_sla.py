"""SLA clocks in the router's and the agents' real units of work (SQLite and PostgreSQL): which
policy runs, business time only, pauses while pending or snoozed, reassignment and reopening;
the watcher's warnings and breaches, each once however often it runs."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from channels.base import Inbound, Sender
from inbox.accounts import create_agent
from routing.actions import Actions
from routing.config import RoutingConfig
from routing.events import REACTIONS, EventLog, Published
from routing.reactions import build_reactions
from routing.router import Router
from routing.sla import SlaReaction, pick_policy
from routing.sla_watch import watch_sla
from storage.config import QueueConfig
from storage.db import SessionFactory
from storage.models import Agent, Conversation, Notification, SlaBreach
from storage.queue.sql import SqlQueue
from storage.work import UnitOfWork

TEHRAN = ZoneInfo("Asia/Tehran")
TEAM = "پشتیبانی"
_ids = itertools.count(1)


def tehran(*args: int) -> datetime:
    return datetime(*args, tzinfo=TEHRAN)  # type: ignore[misc]


MONDAY_9 = tehran(2026, 11, 23, 9)


class Clock:
    def __init__(self) -> None:
        self.now = MONDAY_9

    def __call__(self) -> datetime:
        return self.now

    def at(self, *args: int) -> None:
        self.now = tehran(*args)


def said(text: str, *, who: str = "v-sara") -> Inbound:
    return Inbound(
        channel="chat",
        external_id=f"sla{next(_ids)}",
        sender=Sender(external_id=who, name="سارا"),
        text=text,
    )


def _config() -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "teams": [{"name": TEAM, "members": ["ali@example.ir"], "leads": ["mina@example.ir"]}],
            "business_hours": {
                "timezone": "Asia/Tehran",
                "week": {d: ["09:00-17:00"] for d in ("sat", "sun", "mon", "tue", "wed")}
                | {"thu": ["09:00-13:00"]},
            },
            "sla": {
                "policies": [
                    {
                        "name": "vip",
                        "customer_labels": ["VIP"],
                        "first_response": "30m",
                        "resolution": "4h",
                    },
                    {
                        "name": "standard",
                        "first_response": "2h",
                        "next_response": "1h",
                        "resolution": 960,
                        "warn_before": "15m",
                    },
                ]
            },
        }
    )


class Desk:
    def __init__(self, sessions: SessionFactory) -> None:
        config = _config()
        self.config = config
        self.sessions = sessions
        self.clock = Clock()
        self.events: list[Published] = []
        self.work = UnitOfWork.for_sessions(sessions)
        self.work.session_info[REACTIONS] = build_reactions(config, clock=self.clock)
        self.router = Router(
            sessions,
            config,
            channel_teams={"chat": TEAM},
            notify=self.record,
            clock=self.clock,
            work=self.work,
        )
        self.actions = Actions(
            sessions,
            SqlQueue(sessions, QueueConfig()),
            self.record,
            clock=self.clock,
            work=self.work,
        )

    async def record(self, events: Sequence[Published]) -> None:
        self.events.extend(events)

    def of_type(self, type_: str) -> list[Published]:
        return [e for e in self.events if e.type == type_]

    async def say(self, text: str, **kwargs: Any) -> int:
        routed = await self.router.route(said(text, **kwargs))
        assert routed.conversation_id is not None
        return routed.conversation_id

    async def conversation(self, conversation_id: int) -> Conversation:
        async with self.sessions() as session:
            found = await session.get(Conversation, conversation_id)
            assert found is not None
            return found

    async def breaches(self) -> list[SlaBreach]:
        async with self.sessions() as session:
            return list(await session.scalars(select(SlaBreach).order_by(SlaBreach.id)))

    async def notifications(self) -> list[Notification]:
        async with self.sessions() as session:
            found = await session.scalars(select(Notification).order_by(Notification.id))
            return list(found)


@pytest.fixture
async def desk(sessions: SessionFactory) -> Desk:
    async with sessions.begin() as session:
        for email in ("ali@example.ir", "mina@example.ir"):
            await create_agent(
                session, email=email, name=email.split("@")[0], password="a long enough password"
            )
    desk = Desk(sessions)
    await desk.router.start()
    return desk


async def agent(desk: Desk, name: str) -> int:
    async with desk.sessions() as session:
        found = await session.scalar(select(Agent.id).where(Agent.email == f"{name}@example.ir"))
        assert found is not None
        return found


def dues(conversation: Conversation) -> tuple[datetime | None, datetime | None, datetime | None]:
    return (
        conversation.first_response_due_at,
        conversation.next_response_due_at,
        conversation.resolution_due_at,
    )


async def test_clocks_through_pending_snoozed_reassigned_and_reopened(desk: Desk) -> None:
    ali, mina = await agent(desk, "ali"), await agent(desk, "mina")
    conversation_id = await desk.say("سلام، سفارشم هنوز نرسیده است.")
    conversation = await desk.conversation(conversation_id)
    assert conversation.sla_policy == "standard"
    # 2h to answer; 16 business hours to resolve: Monday's 8 and Tuesday's 8.
    assert dues(conversation) == (tehran(2026, 11, 23, 11), None, tehran(2026, 11, 24, 17))
    assert conversation.sla_due_at == tehran(2026, 11, 23, 10, 45)  # the warning comes first

    desk.clock.at(2026, 11, 23, 10)
    await desk.actions.reply(conversation_id, ali, "بررسی می‌کنم و خبر می‌دهم.")
    conversation = await desk.conversation(conversation_id)
    assert dues(conversation)[:2] == (None, None)  # answered: the response clocks stop

    desk.clock.at(2026, 11, 23, 10, 30)
    await desk.say("ممنون، منتظرم.")
    conversation = await desk.conversation(conversation_id)
    assert conversation.next_response_due_at == tehran(2026, 11, 23, 11, 30)

    desk.clock.at(2026, 11, 23, 11)
    await desk.actions.set_status(conversation_id, "pending", actor_agent_id=ali)
    conversation = await desk.conversation(conversation_id)
    assert dues(conversation) == (None, None, None) and conversation.sla_due_at is None
    assert conversation.sla_paused_at == desk.clock.now
    assert conversation.sla_state["remaining"] == {
        "next_response": 30 * 60.0,
        "resolution": 14 * 3600.0,
    }

    # The customer answers late in the day: the clocks go on with what was left.
    desk.clock.at(2026, 11, 23, 16, 30)
    await desk.say("این هم شماره سفارش: ۴۵۱۲")
    conversation = await desk.conversation(conversation_id)
    assert conversation.status == "open" and conversation.sla_paused_at is None
    assert conversation.next_response_due_at == tehran(2026, 11, 23, 17)
    # 14h left: Monday's last half hour, Tuesday's 8h, then 5.5h on Wednesday.
    assert conversation.resolution_due_at == tehran(2026, 11, 25, 14, 30)

    # Reassignment keeps the clocks.
    await desk.actions.assign(conversation_id, actor_agent_id=ali, agent_id=mina)
    assert dues(await desk.conversation(conversation_id)) == dues(conversation)

    # Snoozed overnight: paused with 15 minutes left; woken by the router's tick at noon.
    desk.clock.at(2026, 11, 23, 16, 45)
    await desk.actions.set_status(
        conversation_id,
        "snoozed",
        actor_agent_id=mina,
        snoozed_until=tehran(2026, 11, 24, 12),
    )
    assert (await desk.conversation(conversation_id)).sla_state["remaining"][
        "next_response"
    ] == 15 * 60.0
    desk.clock.at(2026, 11, 24, 12)
    await desk.router.tick()
    conversation = await desk.conversation(conversation_id)
    assert conversation.status == "open"
    assert conversation.next_response_due_at == tehran(2026, 11, 24, 12, 15)
    # 13.75h were left: Tuesday's 5h, Wednesday's 8h, Thursday's first 45 minutes.
    assert conversation.resolution_due_at == tehran(2026, 11, 26, 9, 45)

    desk.clock.at(2026, 11, 24, 12, 10)
    await desk.actions.set_status(conversation_id, "resolved", actor_agent_id=mina)
    conversation = await desk.conversation(conversation_id)
    assert dues(conversation) == (None, None, None) and conversation.sla_due_at is None

    # The customer writes again: reopened, a fresh resolution clock and one for the answer.
    desk.clock.at(2026, 11, 24, 13)
    assert await desk.say("یک سؤال دیگر هم دارم") == conversation_id
    conversation = await desk.conversation(conversation_id)
    assert dues(conversation) == (None, tehran(2026, 11, 24, 14), tehran(2026, 11, 26, 13))
    assert not await desk.breaches()  # every deadline so far was met


async def test_clocks_count_business_hours_and_follow_the_policy(desk: Desk) -> None:
    ali = await agent(desk, "ali")
    # Thursday 12:30: half an hour left today, Friday closed, 1.5h on Saturday.
    desk.clock.at(2026, 11, 26, 12, 30)
    conversation_id = await desk.say("Hello, my invoice is missing.", who="v-john")
    conversation = await desk.conversation(conversation_id)
    assert conversation.first_response_due_at == tehran(2026, 11, 28, 10, 30)

    # Labelled VIP ten business minutes later: the VIP policy's 30 minutes, 10 already used.
    desk.clock.at(2026, 11, 26, 12, 40)
    await desk.actions.set_labels(conversation_id, add=["VIP"], remove=[], actor_agent_id=ali)
    conversation = await desk.conversation(conversation_id)
    assert conversation.sla_policy == "vip"
    assert conversation.first_response_due_at == tehran(2026, 11, 26, 13)
    assert conversation.next_response_due_at is None  # the VIP policy has no such target
    sla = (await desk.conversation(conversation_id)).sla_state
    assert sla["targets"]["first_response"] == 30 * 60.0

    # A customer marked VIP: their open conversation moves to the VIP policy too.
    desk.clock.at(2026, 11, 28, 9)
    other = await desk.say("سلام، کارت هدیه‌ام کار نمی‌کند.", who="v-maryam")
    assert (await desk.conversation(other)).sla_policy == "standard"
    customer_id = (await desk.conversation(other)).customer_id
    await desk.actions.update_customer(customer_id, actor_agent_id=ali, add_labels=["VIP"])
    conversation = await desk.conversation(other)
    assert conversation.sla_policy == "vip"
    assert conversation.first_response_due_at == tehran(2026, 11, 28, 9, 30)


async def test_warnings_and_breaches_once_however_often_the_watcher_runs(desk: Desk) -> None:
    ali, mina = await agent(desk, "ali"), await agent(desk, "mina")
    conversation_id = await desk.say("سلام، کارت بانکی‌ام مسدود شده است.")
    await desk.actions.assign(conversation_id, actor_agent_id=mina, agent_id=ali)

    desk.clock.at(2026, 11, 23, 10, 30)
    await desk.router.tick()
    assert not desk.of_type("sla.warning")

    desk.clock.at(2026, 11, 23, 10, 50)
    for _ in range(3):
        await desk.router.tick()
    [warning] = desk.of_type("sla.warning")
    assert warning.data["metric"] == "first_response" and warning.data["policy"] == "standard"
    assert datetime.fromisoformat(warning.data["due_at"]) == tehran(2026, 11, 23, 11)
    assert warning.data["conversation"]["id"] == conversation_id
    notes = [n for n in await desk.notifications() if n.kind == "sla_warning"]
    assert sorted(n.agent_id for n in notes) == sorted([ali, mina])  # assignee and team lead

    desk.clock.at(2026, 11, 23, 11, 5)
    for _ in range(3):
        await desk.router.tick()
    [breach] = await desk.breaches()
    assert (breach.conversation_id, breach.metric, breach.policy) == (
        conversation_id,
        "first_response",
        "standard",
    )
    assert breach.due_at == tehran(2026, 11, 23, 11) and breach.assignee_id == ali
    assert len(desk.of_type("sla.breached")) == 1 and len(desk.of_type("sla.warning")) == 1
    conversation = await desk.conversation(conversation_id)
    assert conversation.sla_due_at == tehran(2026, 11, 24, 16, 45)  # resolution's warning next
    summary = desk.of_type("sla.breached")[0].data["conversation"]["sla"]
    assert summary["metric"] == "first_response" and summary["paused"] is False

    # Paused while overdue and resumed: the same deadline, not a second breach.
    await desk.actions.set_status(conversation_id, "pending", actor_agent_id=ali)
    desk.clock.at(2026, 11, 23, 12)
    await desk.say("هنوز منتظر پاسخ هستم")
    conversation = await desk.conversation(conversation_id)
    assert conversation.first_response_due_at == tehran(2026, 11, 23, 11)
    for _ in range(2):
        await desk.router.tick()
    assert len(await desk.breaches()) == 1 and len(desk.of_type("sla.breached")) == 1


async def test_nothing_is_read_without_policies() -> None:
    """No policies: the reaction is not installed, and the watcher asks nothing of the
    database (a session that fails on any use proves it)."""

    class NoSession:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"session.{name} used")

    config = RoutingConfig()
    assert not any(isinstance(r, SlaReaction) for r in build_reactions(config))
    log = EventLog.__new__(EventLog)
    assert watch_sla(NoSession(), log, config, MONDAY_9) == 0  # type: ignore[arg-type]
    SlaReaction(config)(NoSession(), log, [])  # type: ignore[arg-type]


def test_the_first_matching_policy_wins() -> None:
    policies = _config().sla.policies
    pick = pick_policy(policies, channel="chat", team=TEAM, labels={"VIP"}, priority="normal")
    assert pick is not None and pick.name == "vip"
    pick = pick_policy(policies, channel="chat", team=None, labels=(), priority="normal")
    assert pick is not None and pick.name == "standard"
    assert policies[0].warning_seconds(1800) == 15 * 60  # default 15m
    assert policies[1].warning_seconds(60) == 60  # never before the clock starts
    assert timedelta(seconds=policies[1].warning_seconds(7200)) == timedelta(minutes=15)
