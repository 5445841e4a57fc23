"""Auto-acknowledgement in the router's transaction (SQLite and PostgreSQL): sent once per
conversation outside business hours, in the customer's language, saying when the desk opens;
not inside hours (unless asked to), not while the bot answers, not to a machine."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from channels.base import Inbound, Sender
from routing.config import RoutingConfig
from routing.events import REACTIONS, Published
from routing.reactions import build_reactions
from routing.router import Router
from storage.db import SessionFactory
from storage.models import Message
from storage.work import UnitOfWork

TEHRAN = ZoneInfo("Asia/Tehran")
FRIDAY = datetime(2026, 11, 27, 10, 0, tzinfo=TEHRAN)
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=TEHRAN)
_ids = itertools.count(1)


def said(text: str, who: str, *, channel: str = "chat", **metadata: Any) -> Inbound:
    return Inbound(
        channel=channel,
        external_id=f"ack{next(_ids)}",
        sender=Sender(external_id=who, name="مشتری"),
        text=text,
        metadata=metadata,
    )


class Desk:
    def __init__(self, sessions: SessionFactory, now: datetime, **ack: Any) -> None:
        config = RoutingConfig.model_validate(
            {"auto_acknowledge": {"enabled": True, **ack}, "bot": {"knowledge_base": "none.yaml"}}
        )
        self.sessions = sessions
        self.now = now
        self.events: list[Published] = []
        work = UnitOfWork.for_sessions(sessions)
        work.session_info[REACTIONS] = build_reactions(config, clock=lambda: self.now)
        self.router = Router(
            sessions,
            config,
            channel_teams={},
            notify=self.record,
            clock=lambda: self.now,
            work=work,
            bot_channels={"bot-chat": False},
        )

    async def record(self, events: Sequence[Published]) -> None:
        self.events.extend(events)

    async def say(self, text: str, who: str, **kwargs: Any) -> list[Message]:
        """The customer writes; returns the acknowledgements in their conversation."""
        routed = await self.router.route(said(text, who, **kwargs))
        async with self.sessions() as session:
            found = await session.scalars(
                select(Message)
                .where(
                    Message.conversation_id == routed.conversation_id,
                    Message.metadata_["auto_acknowledged"].as_boolean().is_(True),
                )
                .order_by(Message.id)
            )
            return list(found)


async def test_once_outside_hours_in_the_customers_language(sessions: SessionFactory) -> None:
    desk = Desk(sessions, FRIDAY)
    await desk.router.start()
    [ack] = await desk.say("سلام، سفارشم کی ارسال می‌شود؟", "v-sara")
    assert (ack.author_kind, ack.direction, ack.delivery_status) == ("bot", "out", "queued")
    assert "خارج از ساعت کاری" in ack.text and "شنبه ساعت ۰۹:۰۰" in ack.text
    [created] = [
        e for e in desk.events if e.type == "message.created" and e.data["message"]["id"] == ack.id
    ]
    assert created.data["deliver"] is True  # handed to the channel after the commit
    assert len(await desk.say("کسی هست؟", "v-sara")) == 1  # the same conversation: not again

    [english] = await desk.say("Hello, where is my parcel?", "v-john")
    assert "We're closed now" in english.text and "Saturday at 09:00" in english.text


async def test_not_inside_hours_unless_always(sessions: SessionFactory) -> None:
    desk = Desk(sessions, MONDAY)
    await desk.router.start()
    assert await desk.say("سلام، یک سؤال داشتم", "v-sara") == []
    always = Desk(sessions, MONDAY, when="always")
    [ack] = await always.say("سلام، درباره فاکتور سؤال دارم", "v-reza")
    assert ack.text.startswith("پیامتان رسید؛ به‌زودی")


async def test_not_while_the_bot_answers_nor_to_machines_nor_other_channels(
    sessions: SessionFactory,
) -> None:
    desk = Desk(sessions, FRIDAY)
    await desk.router.start()
    assert await desk.say("سلام", "v-bot", channel="bot-chat") == []
    assert await desk.say("Out of office", "v-auto", kind="auto_reply") == []
    only_mail = Desk(sessions, FRIDAY, channels=["mail"])
    assert await only_mail.say("سلام، کسی هست؟", "v-other") == []
