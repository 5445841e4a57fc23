"""Auto-acknowledgement: when a customer opens a conversation, tell them on the same channel that
the message arrived and, outside business hours, when a human will answer
(`routing.auto_acknowledge` in config.yaml)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bots.normalize import detect_language
from routing.actions import message_with_files
from routing.bot_turns import _when
from routing.business_hours import team_calendar
from routing.config import RoutingConfig
from routing.events import EventLog, Happened
from storage.models import Conversation, Message, utcnow

logger = logging.getLogger(__name__)

MARK = "auto_acknowledged"
"""Set in the conversation's metadata once acknowledged: never twice for one conversation."""
NOT_CUSTOMERS = frozenset({"auto_reply", "bounce", "delivery_report"})
"""Inbound kinds a machine wrote (metadata `kind`): answering them could start a mail loop."""


def acknowledgement(
    config: RoutingConfig, language: str, opening: datetime | None, *, is_open: bool
) -> str | None:
    """The text to send, or None when nothing is sent (open, and only `outside_hours`)."""
    ack = config.auto_acknowledge
    lang = "fa" if language == "fa" else "en"
    if is_open:
        return getattr(ack.open, lang) if ack.when == "always" else None
    when = _when(opening, lang) if opening is not None else ""
    text: str = getattr(ack.closed, lang)
    return text.format(opening=when)


class AutoAcknowledge:
    """The reaction: on `conversation.created`, store the acknowledgement as the bot's outbound
    message and queue it for delivery. Skips conversations the bot is answering (it speaks for
    itself there) and anything a machine sent."""

    def __init__(self, config: RoutingConfig, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._config = config
        self._channels = frozenset(config.auto_acknowledge.channels)
        self._clock = clock

    def __call__(self, session: Session, log: EventLog, happened: Sequence[Happened]) -> None:
        created = [
            event
            for event in happened
            if event.type == "conversation.created" and event.conversation_id is not None
        ]
        if not created:
            return
        texts = _first_texts(happened)
        for event in created:
            conversation = session.get(Conversation, event.conversation_id)
            if conversation is None or not self._wanted(conversation):
                continue
            try:
                with session.begin_nested():
                    self._acknowledge(session, log, conversation, texts.get(conversation.id, ""))
            except Exception:  # an acknowledgement must never cost the customer's message
                logger.exception("conversation %s: not acknowledged", conversation.id)

    def _wanted(self, conversation: Conversation) -> bool:
        metadata = conversation.metadata_ or {}
        return not (
            (self._channels and conversation.channel not in self._channels)
            or conversation.status in ("bot", "resolved")
            or "bot" in metadata  # the bot took the turn: its handover says when, not us
            or metadata.get(MARK)
            or metadata.get("kind") in NOT_CUSTOMERS
            or metadata.get("auto_submitted")
        )

    def _acknowledge(
        self, session: Session, log: EventLog, conversation: Conversation, customer_text: str
    ) -> None:
        now = self._clock()
        calendar = team_calendar(session, self._config, conversation.team_id)
        is_open = calendar.is_open(now)
        language = detect_language(customer_text) if customer_text else "fa"
        text = acknowledgement(
            self._config,
            language,
            None if is_open else calendar.next_opening(now),
            is_open=is_open,
        )
        if text is None:
            return
        name = self._config.bot.name.fa if language == "fa" else self._config.bot.name.en
        message = Message(
            conversation_id=conversation.id,
            channel=conversation.channel,
            direction="out",
            author_kind="bot",
            private=False,
            text=text,
            attachments={"files": []},
            delivery_status="queued",
            created_at=now,
            metadata_={"bot": {"name": name}, MARK: True},
        )
        session.add(message)
        conversation.metadata_ = {**(conversation.metadata_ or {}), MARK: True}
        session.flush()
        log.add("message.created", conversation, {"message": message_with_files(message)})
        log.deliver(message.id)


def _first_texts(happened: Sequence[Happened]) -> dict[int, str]:
    """The first customer message of each conversation among the events (its language)."""
    texts: dict[int, str] = {}
    for event in happened:
        message: Any = event.data.get("message")
        if (
            event.type == "message.created"
            and event.conversation_id is not None
            and isinstance(message, dict)
            and message.get("direction") == "in"
        ):
            texts.setdefault(event.conversation_id, str(message.get("text") or ""))
    return texts
