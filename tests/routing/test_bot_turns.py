"""The FAQ bot's turns in the router, on SQLite and PostgreSQL: answers, choices picked by number
or text, handover (asked, not known, after misses) through the normal assignment, business
hours, agent takeover, the FAQ suggestion flow, and bad input that never errors."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from channels.base import Delivery, Inbound, Outbound, Sender
from inbox.accounts import create_agent
from routing.actions import OUTBOUND_TOPIC, Actions, Conflict, Invalid
from routing.admin_actions import approve_faq_suggestion, reject_faq_suggestion
from routing.bot_turns import button_channels, next_opening, picked_choice
from routing.config import BotConfig, BusinessHoursConfig, RoutingConfig
from routing.events import Published
from routing.outbound import Deliverer
from routing.router import Routed, Router
from storage.config import QueueConfig
from storage.db import SessionFactory
from storage.models import Conversation, Event, FaqEntry, FaqSuggestion, Message
from storage.queue import Item
from storage.queue.sql import SqlQueue

_ids = itertools.count(1)
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 12:30 in Tehran: open
FRIDAY = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # closed until Saturday 09:00 in Tehran

KNOWLEDGE = """
- question: ارسال سفارش به شهرستان چقدر طول می‌کشد؟
  answer: ارسال به شهرستان‌ها دو تا چهار روز کاری طول می‌کشد.
  language: fa
- question: ارسال سفارش به تهران چقدر طول می‌کشد؟
  answer: سفارش‌های تهران یک روزه می‌رسند.
  language: fa
- question: چطور رمز عبورم را عوض کنم؟
  alternatives: [تغییر رمز عبور]
  answer: از صفحهٔ حساب کاربری، گزینهٔ «تغییر رمز» را بزنید.
  language: fa
- question: How do I return a product?
  answer: Open your orders page and press "Return" within 14 days.
  language: en
"""
ASK_SHIPPING = "ارسال سفارش چقدر طول می‌کشد"  # near both shipping questions: choices


class Clock:
    def __init__(self, now: datetime = MONDAY) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def inbound(text: str, *, channel: str = "contact", who: str = "maryam@example.com") -> Inbound:
    return Inbound(
        channel=channel,
        external_id=f"b{next(_ids)}",
        sender=Sender(external_id=who, name="مریم", email=who if "@" in who else ""),
        text=text,
        thread_id=who if channel == "tg" else None,
    )


class Desk:
    """A router with the bot on `contact` (numbered lines) and `tg` (buttons), the agents'
    actions and the outbound queue, on one database."""

    def __init__(self, sessions: SessionFactory, tmp_path: Path, clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock
        self.events: list[Published] = []
        self.queue = SqlQueue(sessions, QueueConfig())
        kb = tmp_path / "faq.yaml"
        kb.write_text(KNOWLEDGE, encoding="utf-8")
        self.config = RoutingConfig(
            bot=BotConfig(answer_at=0.9, suggest_at=0.3, knowledge_base=str(kb))
        )
        self.router = Router(
            sessions,
            self.config,
            channel_teams={},
            notify=self.record,
            clock=clock,
            bot_channels={"contact": False, "tg": True},
            queue=self.queue,
        )
        self.actions = Actions(sessions, self.queue, self.record, clock=clock)

    async def record(self, events: Sequence[Published]) -> None:
        self.events.extend(events)

    async def agent(self, email: str = "sara@example.com") -> int:
        async with self.sessions.begin() as session:
            agent = await create_agent(
                session, email=email, name="سارا", password="a long enough password"
            )
        await self.actions.set_presence(agent.id, "online")
        return agent.id

    async def say(self, text: str, **kwargs: Any) -> Routed:
        routed = await self.router.route(inbound(text, **kwargs))
        assert not routed.duplicate
        return routed

    async def conversation(self, conversation_id: int) -> Conversation:
        async with self.sessions() as session:
            found = await session.get(Conversation, conversation_id)
            assert found is not None
            return found

    async def bot_messages(self, conversation_id: int) -> list[Message]:
        async with self.sessions() as session:
            return list(
                (
                    await session.scalars(
                        select(Message)
                        .where(
                            Message.conversation_id == conversation_id,
                            Message.author_kind == "bot",
                        )
                        .order_by(Message.id)
                    )
                ).all()
            )

    async def last_bot(self, conversation_id: int) -> Message:
        return (await self.bot_messages(conversation_id))[-1]

    def handed_over(self) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == "conversation.handed_over"]

    async def queued_outbound(self) -> list[int]:
        taken: list[int] = []

        async def take(item: Item) -> None:
            taken.append(int(item.payload))

        await self.queue.drain(OUTBOUND_TOPIC, take)
        return taken


@pytest.fixture
async def desk(sessions: SessionFactory, tmp_path: Path) -> Desk:
    desk = Desk(sessions, tmp_path, Clock())
    await desk.router.start()
    return desk


async def count(sessions: SessionFactory, model: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_start_loads_the_knowledge_base_once(desk: Desk, tmp_path: Path) -> None:
    assert await count(desk.sessions, FaqEntry) == 4
    await desk.router.start()  # a restart: the database has entries, the file is not read again
    assert await count(desk.sessions, FaqEntry) == 4


async def test_a_broken_knowledge_base_stops_the_start_with_its_path(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    kb = tmp_path / "faq.yaml"
    kb.write_text("- question: no answer here\n  language: fa\n", encoding="utf-8")
    router = Router(
        sessions,
        RoutingConfig(bot=BotConfig(knowledge_base=str(kb))),
        channel_teams={},
        notify=Desk.record,  # type: ignore[arg-type]  # never called
        bot_channels={"contact": False},
    )
    with pytest.raises(ValueError, match=r"routing\.bot\.knowledge_base"):
        await router.start()
    assert await count(sessions, FaqEntry) == 0  # nothing half-imported


async def test_a_missing_knowledge_base_starts_an_empty_bot_that_hands_over(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    router = Router(
        sessions,
        RoutingConfig(bot=BotConfig(knowledge_base=str(tmp_path / "none.yaml"))),
        channel_teams={},
        notify=lambda events: _nothing(),
        bot_channels={"contact": False},
    )
    await router.start()
    routed = await router.route(inbound("ارسال سفارش به تهران چقدر طول می‌کشد؟"))
    async with sessions() as session:
        conversation = await session.get(Conversation, routed.conversation_id)
        assert conversation is not None and conversation.status == "open"
    await router.stop()


async def _nothing() -> None:
    return None


async def test_a_known_question_is_answered_in_the_routers_transaction(desk: Desk) -> None:
    sara = await desk.agent()
    routed = await desk.say("ارسال سفارش به تهران چقدر طول می‌کشد؟")
    conversation = await desk.conversation(routed.conversation_id or 0)
    assert conversation.status == "bot" and conversation.assignee_id is None
    reply = await desk.last_bot(conversation.id)
    assert reply.text == "سفارش‌های تهران یک روزه می‌رسند."
    assert (reply.direction, reply.private, reply.delivery_status) == ("out", False, "queued")
    assert reply.metadata_["bot"]["kind"] == "answer"
    assert reply.metadata_["bot"]["entry_id"] is not None
    assert reply.metadata_["bot"]["score"] >= 0.9
    assert reply.metadata_["quick_replies"] == []
    assert routed.bot_message_id == reply.id
    assert await desk.queued_outbound() == [reply.id]  # queued for the Deliverer after commit
    created = [e for e in desk.events if e.type == "message.created"]
    assert [e.data["message"]["author_kind"] for e in created] == ["customer", "bot"]
    assert created[1].data["message"]["bot"]["kind"] == "answer"
    assert sara not in {e.assignee_id for e in desk.events if e.conversation_id}


async def test_choices_come_numbered_and_a_number_in_any_script_picks_one(desk: Desk) -> None:
    routed = await desk.say(ASK_SHIPPING)
    offer = await desk.last_bot(routed.conversation_id or 0)
    assert offer.metadata_["bot"]["kind"] == "choose"
    questions = offer.metadata_["quick_replies"]
    assert 2 <= len(questions) <= 3
    assert "۱. " in offer.text and "۲. " in offer.text  # no buttons on this channel
    assert [c["question"] for c in offer.metadata_["bot"]["choices"]] == questions
    await desk.say("۲")
    answer = await desk.last_bot(routed.conversation_id or 0)
    chosen = offer.metadata_["bot"]["choices"][1]["entry_id"]
    assert answer.metadata_["bot"]["kind"] == "answer"
    assert answer.metadata_["bot"]["entry_id"] == chosen
    conversation = await desk.conversation(routed.conversation_id or 0)
    assert conversation.status == "bot"
    assert conversation.metadata_["bot"]["misses"] == 0


async def test_a_tapped_button_sends_the_choice_text_and_picks_it(desk: Desk) -> None:
    routed = await desk.say(ASK_SHIPPING, channel="tg", who="4242")
    offer = await desk.last_bot(routed.conversation_id or 0)
    assert offer.text == "منظورتان یکی از این‌هاست؟"  # the buttons carry the questions
    first = offer.metadata_["quick_replies"][0]
    await desk.say(first, channel="tg", who="4242")
    answer = await desk.last_bot(routed.conversation_id or 0)
    assert answer.metadata_["bot"]["entry_id"] == offer.metadata_["bot"]["choices"][0]["entry_id"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("اپراتور", "پیامتان را به همکارانم سپردم"),
        ("can I talk to a human please", "I've passed your message to our team"),
    ],
)
async def test_asking_for_a_human_hands_over_at_once(desk: Desk, text: str, expected: str) -> None:
    sara = await desk.agent()
    routed = await desk.say(text)
    conversation = await desk.conversation(routed.conversation_id or 0)
    assert conversation.status == "open" and conversation.assignee_id == sara
    assert conversation.waiting_since is not None
    reply = await desk.last_bot(conversation.id)
    assert expected in reply.text and "خارج از ساعت" not in reply.text
    assert reply.metadata_["bot"]["kind"] == "handover"
    assert [h["reason"] for h in desk.handed_over()] == ["asked"]
    assert routed.assignee_id == sara
    await desk.say("ارسال سفارش به تهران چقدر طول می‌کشد؟")  # the bot has left it
    assert len(await desk.bot_messages(conversation.id)) == 1


async def test_an_unknown_question_hands_over_and_is_kept_for_the_faq_offer(desk: Desk) -> None:
    routed = await desk.say("قیمت بلیت هواپیما به کیش برای نوروز")
    conversation = await desk.conversation(routed.conversation_id or 0)
    assert conversation.status == "open" and conversation.assignee_id is None  # nobody online
    reply = await desk.last_bot(conversation.id)
    assert reply.metadata_["bot"]["kind"] == "unknown"
    assert reply.text.startswith("پاسخ این پرسش را نمی‌دانم")
    assert conversation.metadata_["bot"]["unanswered"] == "قیمت بلیت هواپیما به کیش برای نوروز"
    assert [h["reason"] for h in desk.handed_over()] == ["unknown"]
    sara = await desk.agent()  # coming online takes the waiting conversation
    assert (await desk.conversation(conversation.id)).assignee_id == sara


async def test_two_turns_without_an_answer_hand_over_with_assignment(desk: Desk) -> None:
    sara = await desk.agent()
    routed = await desk.say(ASK_SHIPPING)
    assert (await desk.last_bot(routed.conversation_id or 0)).metadata_["bot"]["kind"] == "choose"
    await desk.say(ASK_SHIPPING + " ؟")  # not a pick: choices again would be a second miss
    conversation = await desk.conversation(routed.conversation_id or 0)
    assert conversation.status == "open" and conversation.assignee_id == sara
    assert [h["reason"] for h in desk.handed_over()] == ["misses"]
    assert conversation.metadata_["bot"]["misses"] == 2
    assert len(await desk.bot_messages(conversation.id)) == 2


async def test_outside_business_hours_the_handover_says_when(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    desk = Desk(sessions, tmp_path, Clock(FRIDAY))
    await desk.router.start()
    routed = await desk.say("اپراتور")
    reply = await desk.last_bot(routed.conversation_id or 0)
    assert "خارج از ساعت کاری" in reply.text and "شنبه ساعت ۰۹:۰۰" in reply.text
    routed = await desk.say("I need an agent", who="john@example.com")
    reply = await desk.last_bot(routed.conversation_id or 0)
    assert "We're closed now" in reply.text and "Saturday at 09:00 (Asia/Tehran)" in reply.text


def test_next_opening_in_the_configured_zone() -> None:
    hours = BusinessHoursConfig()
    assert next_opening(hours, MONDAY) is None
    opening = next_opening(hours, FRIDAY)
    assert opening is not None and opening.isoformat() == "2026-11-28T09:00:00+03:30"
    late_wednesday = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # 17:30 in Tehran
    opening = next_opening(hours, late_wednesday)
    assert opening is not None and opening.isoformat() == "2026-11-28T09:00:00+03:30"
    assert next_opening(BusinessHoursConfig(week={}), FRIDAY) is None  # never opens


async def test_taking_over_silences_the_bot_for_good(desk: Desk) -> None:
    sara = await desk.agent()
    routed = await desk.say("ارسال سفارش به تهران چقدر طول می‌کشد؟")
    conversation = await desk.actions.take_over(routed.conversation_id or 0, sara)
    assert conversation.status == "open" and conversation.assignee_id == sara
    assert conversation.metadata_["bot"]["silenced"] is True
    assert desk.handed_over()[-1]["reason"] == "agent"
    await desk.say("ارسال سفارش به تهران چقدر طول می‌کشد؟")
    assert len(await desk.bot_messages(conversation.id)) == 1
    await desk.actions.take_over(conversation.id, sara)  # again: nothing more happens
    assert len(desk.handed_over()) == 1


@pytest.mark.parametrize("how", ["reply", "assign"])
async def test_an_agent_replying_or_assigning_silences_the_bot(desk: Desk, how: str) -> None:
    sara = await desk.agent()
    routed = await desk.say(ASK_SHIPPING)
    conversation_id = routed.conversation_id or 0
    if how == "reply":
        await desk.actions.reply(conversation_id, sara, "سلام، بررسی می‌کنم.")
    else:
        await desk.actions.assign(conversation_id, actor_agent_id=sara, agent_id=sara)
    conversation = await desk.conversation(conversation_id)
    assert conversation.status == "open" and conversation.assignee_id == sara
    assert conversation.metadata_["bot"]["silenced"] is True
    await desk.say("۱")  # would have picked a choice
    assert len(await desk.bot_messages(conversation_id)) == 1


async def test_a_suggestion_from_an_unanswered_question_becomes_an_entry(desk: Desk) -> None:
    sara = await desk.agent()
    question = "آیا امکان پرداخت اقساطی وجود دارد؟"
    routed = await desk.say(question)
    conversation_id = routed.conversation_id or 0
    with pytest.raises(Invalid, match="answer"):  # no reply yet to take as the answer
        await desk.actions.suggest_faq(conversation_id, sara)
    await desk.actions.reply(conversation_id, sara, "بله، با کارت‌های بانکی عضو طرح اقساط.")
    suggestion = await desk.actions.suggest_faq(conversation_id, sara)
    assert (suggestion.question, suggestion.language) == (question, "fa")
    assert suggestion.answer == "بله، با کارت‌های بانکی عضو طرح اقساط."
    assert suggestion.status == "pending"
    summary = await desk.actions.run(approve_faq_suggestion, suggestion.id, sara, desk.clock())
    assert summary["status"] == "approved" and summary["entry_id"]
    with pytest.raises(Conflict):
        await desk.actions.run(reject_faq_suggestion, suggestion.id, sara, desk.clock())
    routed = await desk.say(question, who="ali@example.com")  # the bot knows it now
    reply = await desk.last_bot(routed.conversation_id or 0)
    assert reply.metadata_["bot"]["entry_id"] == summary["entry_id"]
    assert reply.text == "بله، با کارت‌های بانکی عضو طرح اقساط."


async def test_a_rejected_suggestion_makes_no_entry(desk: Desk) -> None:
    sara = await desk.agent()
    routed = await desk.say("ساعت کاری انبار چیست؟")
    suggestion = await desk.actions.suggest_faq(
        routed.conversation_id or 0, sara, answer="از ۸ تا ۱۶."
    )
    summary = await desk.actions.run(reject_faq_suggestion, suggestion.id, sara, desk.clock())
    assert summary["status"] == "rejected" and summary["entry_id"] is None
    assert await count(desk.sessions, FaqEntry) == 4
    async with desk.sessions() as session:
        stored = await session.get(FaqSuggestion, suggestion.id)
        assert stored is not None and stored.reviewed_by == sara


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀🙏🌹",
        "۱۲۳۴۵۶۷۸۹",
        "12",
        "x" * 100_000,
        "سلام hello مرسی thanks ١٢٣",
        "\u200c\u200c",
    ],
)
async def test_bad_input_gets_an_answer_or_a_human_never_an_error(desk: Desk, text: str) -> None:
    routed = await desk.say(text)
    reply = await desk.last_bot(routed.conversation_id or 0)
    assert reply.metadata_["bot"]["kind"] in ("answer", "choose", "unknown", "handover")
    assert reply.text.strip()
    conversation = await desk.conversation(routed.conversation_id or 0)
    assert conversation.status in ("bot", "open")


async def test_a_burst_in_one_batch_takes_turns_in_order(desk: Desk) -> None:
    """Messages routed together share a transaction: each gets its turn, and once the bot has
    handed over the rest wait for the agent."""
    import asyncio

    sara = await desk.agent()
    results = await asyncio.gather(
        desk.router.route(inbound("ارسال سفارش به تهران چقدر طول می‌کشد؟")),
        desk.router.route(inbound("اپراتور")),
        desk.router.route(inbound("ارسال سفارش به تهران چقدر طول می‌کشد؟")),
    )
    conversation_id = results[0].conversation_id or 0
    assert {r.conversation_id for r in results} == {conversation_id}
    kinds = [m.metadata_["bot"]["kind"] for m in await desk.bot_messages(conversation_id)]
    assert kinds == ["answer", "handover"]
    assert (await desk.conversation(conversation_id)).assignee_id == sara
    assert await count(desk.sessions, Event) > 0


def test_a_number_or_the_text_of_a_choice_picks_it() -> None:
    choices = [{"entry_id": 7, "question": "How do I return a product?"}, {"entry_id": 9}]
    assert picked_choice("1", choices) == 7
    assert picked_choice("۲", choices) == 9
    assert picked_choice("٢.", choices) == 9
    assert picked_choice(" 1) ", choices) == 7
    assert picked_choice("3", choices) is None
    assert picked_choice("how do I  return a product?", choices) == 7
    assert picked_choice("1", []) is None
    assert picked_choice("", choices) is None


def test_bot_channels_come_from_the_channel_configs() -> None:
    class Config:
        def __init__(self, name: str, type_: str, bot: str | None) -> None:
            self.name, self.type, self.bot, self.enabled = name, type_, bot, True

    configs = [
        Config("partners", "api", "faq"),
        Config("tg", "telegram", "faq"),
        Config("crm", "api", None),
    ]
    assert button_channels(configs) == {"partners": False, "tg": True}


async def test_the_deliverer_hands_choices_and_the_bot_name_to_the_channel(desk: Desk) -> None:
    routed = await desk.say(ASK_SHIPPING, channel="tg", who="4242")

    class Recorder:
        name, type = "tg", "telegram"

        def __init__(self) -> None:
            self.sent: list[Outbound] = []

        async def send(self, message: Outbound) -> Delivery:
            self.sent.append(message)
            return Delivery(external_id="1")

    channel = Recorder()
    deliverer = Deliverer(desk.sessions, {"tg": channel}, desk.record)  # type: ignore[dict-item]
    assert await deliverer.deliver(routed.bot_message_id or 0) == "sent"
    [outbound] = channel.sent
    assert len(outbound.quick_replies) >= 2
    assert outbound.author_name == "دستیار پیشخوان"


async def test_a_greeting_is_handed_over_without_an_i_dont_know(desk: Desk) -> None:
    routed = await desk.say("سلام")
    reply = await desk.last_bot(routed.conversation_id or 0)
    assert reply.metadata_["bot"]["kind"] == "unknown"
    assert "نمی‌دانم" not in reply.text and "همکارانم" in reply.text
    conversation = await desk.conversation(routed.conversation_id or 0)
    assert "unanswered" not in conversation.metadata_["bot"]  # nothing to offer as an FAQ


async def test_a_conversation_left_with_a_bot_that_was_switched_off_goes_to_the_agents(
    desk: Desk,
) -> None:
    routed = await desk.say("ارسال سفارش به تهران چقدر طول می‌کشد؟")
    await desk.router.stop()
    sara = await desk.agent()
    without_bot = Router(
        desk.sessions, RoutingConfig(), channel_teams={}, notify=desk.record, clock=desk.clock
    )
    await without_bot.start()
    again = await without_bot.route(inbound("هنوز نرسیده"))
    assert again.conversation_id == routed.conversation_id and again.assignee_id == sara
    conversation = await desk.conversation(routed.conversation_id or 0)
    assert conversation.status == "open"
    assert len(await desk.bot_messages(conversation.id)) == 1
    await without_bot.stop()


async def test_a_broken_matcher_costs_no_message_the_customer_gets_a_human(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("index build failed")

    monkeypatch.setattr("routing.bot_turns.FaqIndex.build", broken)
    routed = await desk.say("ارسال سفارش به تهران چقدر طول می‌کشد؟")
    conversation = await desk.conversation(routed.conversation_id or 0)
    assert conversation.status == "open"
    assert (await desk.last_bot(conversation.id)).metadata_["bot"]["kind"] == "unknown"


def test_a_web_form_without_a_reply_channel_gets_no_bot() -> None:
    """Its answers could reach nobody, and the conversation would wait on a bot forever."""
    from types import SimpleNamespace

    from routing.bot_turns import button_channels

    channels = [
        SimpleNamespace(type="webform", name="contact", bot="faq", reply_channel=None),
        SimpleNamespace(type="webform", name="quote", bot="faq", reply_channel="support"),
        SimpleNamespace(type="webchat", name="site", bot="faq"),
        SimpleNamespace(type="email", name="support", bot=None),
    ]
    assert button_channels(channels) == {"quote": False, "site": True}
