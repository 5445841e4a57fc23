"""How a survey speaks to the customer: with buttons or signed links, per channel, in the
language they wrote in, as bot messages stored and recorded like any reply."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bots.normalize import detect_language
from routing.actions import message_with_files
from routing.bot_turns import BUTTON_TYPES
from routing.config import CsatConfig, CsatText
from routing.events import ConversationLike, EventLog
from storage.models import Conversation, Message

logger = logging.getLogger(__name__)

Mode = Literal["buttons", "links"]


def survey_modes(channels: Sequence[Any], config: CsatConfig) -> dict[str, Mode]:
    """How each surveyed channel asks: buttons in chats that show them, links otherwise (email,
    and web forms answered by email). A web form without a `reply_channel` cannot reach the
    customer, so it asks nothing."""
    modes: dict[str, Mode] = {}
    by_name = {getattr(c, "name", ""): c for c in channels}
    for name in config.channels:
        channel = by_name.get(name)
        if channel is None or not getattr(channel, "enabled", True):
            continue
        kind = getattr(channel, "type", "")
        if kind == "webform" and not getattr(channel, "reply_channel", None):
            logger.warning("routing.csat: %s is a web form without reply_channel; not asked", name)
            continue
        modes[name] = "buttons" if kind in BUTTON_TYPES else "links"
    return modes


def texts(config: CsatConfig, language: str) -> CsatText:
    return config.texts.en if language == "en" else config.texts.fa


def customer_language(session: Session, conversation: Conversation) -> str:
    """The language the customer wrote in last (what the bot settled on, if it spoke)."""
    bot = conversation.metadata_.get("bot") if isinstance(conversation.metadata_, dict) else None
    if isinstance(bot, dict) and bot.get("language") in ("fa", "en"):
        return str(bot["language"])
    text = session.scalar(
        select(Message.text)
        .where(Message.conversation_id == conversation.id, Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(1)
    )
    try:
        language = detect_language(text[:2000]) if text else "fa"
    except Exception:
        return "fa"
    return "en" if language == "en" else "fa"


def say(
    session: Session,
    log: EventLog,
    conversation: ConversationLike,
    text: str,
    now: datetime,
    *,
    survey_id: int,
    step: str,
    choices: Sequence[str] = (),
    deliver: bool = True,
) -> int:
    """Store a survey message to the customer, record it and (`deliver`) mark it for delivery.
    The router queues its own replies after the commit (`Routed.bot_message_id`): marking
    them would publish to the queue from inside the queue's own in-transaction handler."""
    metadata: dict[str, Any] = {"csat": {"survey_id": survey_id, "step": step}}
    if choices:
        metadata["quick_replies"] = list(choices)
    message = Message(
        conversation_id=conversation.id,
        channel=conversation.channel,
        direction="out",
        author_kind="bot",
        private=False,
        text=text,
        attachments={"files": []},
        delivery_status="queued",
        delivery_attempts=0,
        created_at=now,
        metadata_=metadata,
    )
    session.add(message)
    session.flush()
    data = message_with_files(message)
    log.add("message.created", conversation, {"message": {**data, **metadata}})
    if deliver:
        log.deliver(message.id)
    return message.id
