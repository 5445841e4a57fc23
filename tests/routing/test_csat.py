"""Satisfaction surveys in the router's and the agents' transactions (SQLite and PostgreSQL):
who is asked and when, answers in the chat that never reopen, comments, low scores."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from channels.base import Inbound, Sender
from inbox.accounts import create_agent
from inbox.config import ConfigError, parse_config
from routing.actions import Actions
from routing.config import CsatConfig, RoutingConfig
from routing.csat import Surveys, rating_in, sign, survey_modes, verify
from routing.events import REACTIONS, Published
from routing.reactions import build_reactions
from routing.router import Router
from storage.config import QueueConfig
from storage.db import SessionFactory
from storage.models import Conversation, CsatSurvey, Message, Notification
from storage.queue.sql import SqlQueue
from storage.work import UnitOfWork

_ids = itertools.count(1)
CHANNELS = [
    SimpleNamespace(name="chat", type="webchat"),
    SimpleNamespace(name="mail", type="email"),
    SimpleNamespace(name="form", type="webform", reply_channel=None),
]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def said(text: str, *, channel: str = "chat", who: str = "v-sara") -> Inbound:
    return Inbound(
        channel=channel,
        external_id=f"c{next(_ids)}",
        sender=Sender(external_id=who, name="سارا"),
        text=text,
    )


class Desk:
    """Router and agent actions sharing one unit of work with the reactions installed."""

    def __init__(self, sessions: SessionFactory, config: RoutingConfig) -> None:
        self.sessions = sessions
        self.clock = Clock()
        self.events: list[Published] = []
        self.work = UnitOfWork.for_sessions(sessions)
        self.work.session_info[REACTIONS] = build_reactions(
            config, channels=CHANNELS, public_url="https://desk.example.ir/", clock=self.clock
        )
        self.router = Router(
            sessions,
            config,
            channel_teams={"chat": "پشتیبانی", "mail": "پشتیبانی"},
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

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    async def conversation(self, conversation_id: int) -> Conversation:
        async with self.sessions() as session:
            found = await session.get(Conversation, conversation_id)
            assert found is not None
            return found

    async def surveys(self) -> list[CsatSurvey]:
        async with self.sessions() as session:
            return list(await session.scalars(select(CsatSurvey).order_by(CsatSurvey.id)))

    async def messages(self, conversation_id: int) -> list[Message]:
        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(Message)
                    .where(Message.conversation_id == conversation_id)
                    .order_by(Message.id)
                )
            )

    async def served_and_resolved(self, text: str, agent_id: int, **kwargs: Any) -> int:
        """A customer writes, the agent answers publicly and resolves: returns the conversation."""
        routed = await self.router.route(said(text, **kwargs))
        assert routed.conversation_id is not None
        await self.actions.reply(routed.conversation_id, agent_id, "سفارش شما فردا ارسال می‌شود.")
        await self.actions.set_status(routed.conversation_id, "resolved", actor_agent_id=agent_id)
        return routed.conversation_id


def _config(**csat: Any) -> RoutingConfig:
    return RoutingConfig(
        teams=(
            {"name": "پشتیبانی", "members": ("ali@example.ir",), "leads": ("mina@example.ir",)},
        ),
        csat=CsatConfig(**{"channels": ("chat", "mail"), **csat}),
    )


@pytest.fixture
async def agents(sessions: SessionFactory) -> dict[str, int]:
    ids = {}
    async with sessions.begin() as session:
        for email in ("ali@example.ir", "mina@example.ir"):
            agent = await create_agent(
                session, email=email, name=email.split("@")[0], password="a long enough password"
            )
            ids[email.split("@")[0]] = agent.id
    return ids


async def _desk(sessions: SessionFactory, agents: dict[str, int], **csat: Any) -> Desk:
    desk = Desk(sessions, _config(**csat))
    await desk.router.start()
    await desk.actions.set_presence(agents["ali"], "online")
    return desk


async def test_resolving_asks_with_five_buttons_in_the_customers_language(
    sessions: SessionFactory, agents: dict[str, int]
) -> None:
    desk = await _desk(sessions, agents)
    conversation_id = await desk.served_and_resolved("سفارشم کی می‌رسد؟", agents["ali"])
    [survey] = await desk.surveys()
    assert (survey.status, survey.agent_id, survey.channel) == ("sent", agents["ali"], "chat")
    assert survey.expires_at - survey.sent_at == timedelta(hours=72)
    question = (await desk.messages(conversation_id))[-1]
    assert question.author_kind == "bot" and question.delivery_status == "queued"
    assert question.text.startswith("از پاسخگویی ما")
    assert question.metadata_["quick_replies"][0] == "۵ ⭐ عالی"
    assert len(question.metadata_["quick_replies"]) == 5
    [created] = [
        e
        for e in desk.events
        if e.type == "message.created" and e.data["message"]["id"] == question.id
    ]
    assert created.data["deliver"] is True  # queued for the widget once committed
    assert "csat.requested" in desk.types()

    english = await desk.served_and_resolved(
        "Where is my order? It has been a week.", agents["ali"], who="v-john"
    )
    last = (await desk.messages(english))[-1]
    assert last.text.startswith("How satisfied")
    assert last.metadata_["quick_replies"][0] == "5 ⭐ Excellent"


async def test_a_rating_in_the_chat_is_recorded_without_reopening(
    sessions: SessionFactory, agents: dict[str, int]
) -> None:
    desk = await _desk(sessions, agents)
    conversation_id = await desk.served_and_resolved("سلام، فاکتورم نیامده", agents["ali"])
    desk.events.clear()
    desk.clock.now += timedelta(minutes=3)
    routed = await desk.router.route(said("۴"))
    assert routed.conversation_id == conversation_id and not routed.duplicate
    conversation = await desk.conversation(conversation_id)
    assert conversation.status == "resolved" and conversation.assignee_id == agents["ali"]
    [survey] = await desk.surveys()
    assert (survey.status, survey.rating) == ("answered", 4)
    assert "conversation.reopened" not in desk.types()
    assert "csat.answered" in desk.types()
    asked = (await desk.messages(conversation_id))[-1]
    assert asked.text.startswith("سپاس از امتیاز شما")

    await desk.router.route(said("پاسخ‌ها خیلی سریع بود، ممنون"))
    [survey] = await desk.surveys()
    assert survey.comment == "پاسخ‌ها خیلی سریع بود، ممنون"
    assert (await desk.conversation(conversation_id)).status == "resolved"
    thanks = (await desk.messages(conversation_id))[-1]
    assert thanks.text == "از شما سپاسگزاریم؛ نظرتان ثبت شد."

    # Anything after that is a message like any other: it reopens the conversation.
    await desk.router.route(said("یک سؤال دیگر هم دارم"))
    assert (await desk.conversation(conversation_id)).status == "open"


async def test_a_button_text_answers_and_other_text_reopens(
    sessions: SessionFactory, agents: dict[str, int]
) -> None:
    desk = await _desk(sessions, agents, ask_comment=False)
    conversation_id = await desk.served_and_resolved("سلام", agents["ali"])
    await desk.router.route(said("سفارش دوم من هم نرسیده"))  # not a rating: reopens
    assert (await desk.conversation(conversation_id)).status == "open"
    [survey] = await desk.surveys()
    assert survey.status == "sent"
    assert rating_in("۵ ⭐ عالی", CsatConfig()) == 5
    assert rating_in("2 Poor", CsatConfig()) == 2
    assert rating_in(" 3. ", CsatConfig()) == 3
    assert rating_in("6", CsatConfig()) is None
    assert rating_in("۴۵ هزار تومان", CsatConfig()) is None


async def test_quiet_period_unconfigured_channels_and_bot_only_conversations(
    sessions: SessionFactory, agents: dict[str, int]
) -> None:
    desk = await _desk(sessions, agents)
    await desk.served_and_resolved("سلام", agents["ali"])
    desk.clock.now += timedelta(hours=2)
    # The customer comes back the same day and is served and resolved again: not asked again.
    again = await desk.served_and_resolved("یک سؤال دیگر درباره‌ی همان سفارش", agents["ali"])
    assert (await desk.conversation(again)).status == "resolved"
    assert len(await desk.surveys()) == 1
    # A channel not in routing.csat.channels asks nothing.
    await desk.served_and_resolved("فرم تماس", agents["ali"], channel="form", who="v-other")
    assert len(await desk.surveys()) == 1
    # Resolved without a public reply from an agent (spam, the bot alone): not asked.
    routed = await desk.router.route(said("تبلیغات", who="v-spam"))
    assert routed.conversation_id is not None
    await desk.actions.set_status(routed.conversation_id, "resolved", actor_agent_id=agents["ali"])
    assert len(await desk.surveys()) == 1
    # After the quiet period the customer is asked again.
    desk.clock.now += timedelta(hours=25)
    await desk.served_and_resolved("باز هم سلام", agents["ali"])
    assert len(await desk.surveys()) == 2


async def test_a_low_score_notifies_the_lead_and_the_assignee_and_reopens_nothing(
    sessions: SessionFactory, agents: dict[str, int]
) -> None:
    desk = await _desk(sessions, agents)
    conversation_id = await desk.served_and_resolved("کالا خراب رسید", agents["ali"])
    await desk.router.route(said("۱"))
    async with sessions() as session:
        notified = (
            await session.execute(
                select(Notification.agent_id, Notification.kind, Notification.conversation_id)
            )
        ).all()
    assert sorted(notified) == sorted(
        [
            (agents["ali"], "csat_low", conversation_id),
            (agents["mina"], "csat_low", conversation_id),
        ]
    )
    assert (await desk.conversation(conversation_id)).status == "resolved"
    addressed = [e.recipient_id for e in desk.events if e.type == "notification.created"]
    assert sorted(addressed) == sorted([agents["ali"], agents["mina"]])


async def test_an_expired_survey_takes_no_answer(
    sessions: SessionFactory, agents: dict[str, int]
) -> None:
    desk = await _desk(sessions, agents, expires_hours=1)
    conversation_id = await desk.served_and_resolved("سلام", agents["ali"])
    desk.clock.now += timedelta(hours=2)
    await desk.router.route(said("۵"))
    [survey] = await desk.surveys()
    assert survey.rating is None
    assert (await desk.conversation(conversation_id)).status == "open"


def test_no_survey_reaction_runs_when_no_channel_surveys() -> None:
    assert not any(isinstance(r, Surveys) for r in build_reactions(RoutingConfig()))
    assert any(isinstance(r, Surveys) for r in build_reactions(_config(), channels=CHANNELS))


def test_tokens_are_signed_and_configuration_names_real_channels() -> None:
    key = bytes(range(32))
    token = sign(key, 42, "abcdefghijklmnopqrstuv")
    assert verify(key, token) == (42, "abcdefghijklmnopqrstuv")
    assert verify(bytes(32), token) is None
    assert verify(key, token.replace("42.", "43.", 1)) is None
    assert verify(key, "garbage") is None
    with pytest.raises(ConfigError, match=r"routing\.csat\.channels\[0\]: no channel"):
        parse_config(
            {
                "channels": [{"type": "webform", "name": "contact"}],
                "routing": {"csat": {"channels": ["telegram"]}},
            }
        )


def test_each_channel_asks_the_way_it_can_reach_the_customer() -> None:
    channels = [
        SimpleNamespace(name="tg", type="telegram"),
        SimpleNamespace(name="mail", type="email"),
        SimpleNamespace(name="form", type="webform", reply_channel="mail"),
        SimpleNamespace(name="bare", type="webform", reply_channel=None),
        SimpleNamespace(name="off", type="webchat", enabled=False),
    ]
    config = CsatConfig(channels=("tg", "mail", "form", "bare", "off"))
    assert survey_modes(channels, config) == {"tg": "buttons", "mail": "links", "form": "links"}
