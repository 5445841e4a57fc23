"""Answers given in a chat: the router's hook that takes a customer's message answering an
open survey (a rating, then the comment asked for after it) out of routing, stores it in the
survey's resolved conversation without reopening it, and thanks the customer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from channels.base import Inbound
from routing.actions import message_with_files
from routing.config import CsatConfig
from routing.csat.answers import record_comment, record_rating
from routing.csat.asking import customer_language, say, texts
from routing.events import EventLog
from routing.identity import Resolved
from storage.models import Conversation, CsatSurvey, Message

_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_RATING = re.compile(r"^\s*([1-5])\s*[.)\-،,!⭐★]*\s*$")

COMMENT_KEY = "csat_comment"
"""`conversation.metadata_` key: the survey whose comment the next message gives, and until
when (set after a rating in a chat when `ask_comment` is on)."""


def rating_in(text: str, config: CsatConfig) -> int | None:
    """The rating a message gives: a digit 1–5 (Persian, Arabic or Latin), or a button's text."""
    plain = " ".join(text.translate(_DIGITS).split())
    if match := _RATING.match(plain):
        return int(match.group(1))
    folded = plain.casefold()
    for words in (config.texts.fa, config.texts.en):
        for rating, label in enumerate(words.ratings, start=1):
            if folded and folded == " ".join(label.translate(_DIGITS).split()).casefold():
                return rating
    return None


def _awaiting_comment(conversation: Conversation, survey: CsatSurvey, now: datetime) -> bool:
    waiting = conversation.metadata_.get(COMMENT_KEY) if conversation.metadata_ else None
    if not isinstance(waiting, dict) or waiting.get("survey_id") != survey.id:
        return False
    try:
        until = datetime.fromisoformat(str(waiting.get("until")))
    except ValueError:
        return False
    return survey.status == "answered" and not survey.comment and now <= until


def take_answers(
    config: CsatConfig,
    session: Session,
    inbounds: Sequence[Inbound],
    resolved: Sequence[Resolved],
    log: EventLog,
    *,
    now: datetime,
) -> tuple[list[Inbound], list[Resolved], dict[tuple[str, str], dict[str, Any]]]:
    """The router's hook, after identity and before threading: the messages that answer an open
    survey (a rating, or the comment asked for after one) are stored in the survey's resolved
    conversation and recorded here; the others are returned for routing as usual, with what
    became of the answers (`Routed` fields by (channel, external id)). No query unless a message
    came on a surveyed channel."""
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    if not config.channels:
        return list(inbounds), list(resolved), answers
    keys = {
        (who.customer.id, inbound.channel)
        for inbound, who in zip(inbounds, resolved, strict=True)
        if inbound.channel in config.channels and who.customer.id and inbound.text.strip()
    }
    if not keys:
        return list(inbounds), list(resolved), answers
    open_ = _open_surveys(session, keys, now)
    if not open_:
        return list(inbounds), list(resolved), answers
    rest: list[Inbound] = []
    rest_who: list[Resolved] = []
    for inbound, who in zip(inbounds, resolved, strict=True):
        found = open_.get((who.customer.id, inbound.channel))
        reply_id = _answer(config, session, log, inbound, *found, now) if found else None
        if found is None or reply_id is None:
            rest.append(inbound)
            rest_who.append(who)
            continue
        conversation = found[1]
        answers[(inbound.channel, inbound.external_id)] = {
            "duplicate": False,
            "bot_message_id": reply_id,
            "conversation_id": conversation.id,
            "message_id": conversation.last_inbound_message_id,
            "customer_id": who.customer.id,
            "assignee_id": conversation.assignee_id,
        }
    return rest, rest_who, answers


def _open_surveys(
    session: Session, keys: set[tuple[int, str]], now: datetime
) -> dict[tuple[int, str], tuple[CsatSurvey, Conversation]]:
    """Each (customer, channel)'s latest survey that still takes an answer or a comment, with
    its conversation, if that is the customer's latest there and still resolved."""
    recent = now - timedelta(days=30)
    rows = session.execute(
        select(CsatSurvey, Conversation)
        .join(Conversation, Conversation.id == CsatSurvey.conversation_id)
        .where(
            or_(*(and_(CsatSurvey.customer_id == c, CsatSurvey.channel == ch) for c, ch in keys)),
            CsatSurvey.sent_at > recent,
            CsatSurvey.status.in_(("sent", "answered")),
            Conversation.status == "resolved",
        )
        .order_by(CsatSurvey.id)
    ).all()
    found: dict[tuple[int, str], tuple[CsatSurvey, Conversation]] = {}
    for survey, conversation in rows:
        found[(survey.customer_id, survey.channel)] = (survey, conversation)
    if not found:
        return found
    latest = {
        (customer_id, channel): conversation_id
        for customer_id, channel, conversation_id in session.execute(
            select(Conversation.customer_id, Conversation.channel, Conversation.id)
            .where(
                Conversation.customer_id.in_({c for c, _ in found}),
                Conversation.channel.in_({ch for _, ch in found}),
            )
            .order_by(Conversation.id)
        )
    }
    return {
        key: (survey, conversation)
        for key, (survey, conversation) in found.items()
        if latest.get(key) == conversation.id
        and (
            (survey.status == "sent" and now < survey.expires_at)
            or _awaiting_comment(conversation, survey, now)
        )
    }


def _answer(
    config: CsatConfig,
    session: Session,
    log: EventLog,
    inbound: Inbound,
    survey: CsatSurvey,
    conversation: Conversation,
    now: datetime,
) -> int | None:
    """Record `inbound` as the survey's rating or comment, and return the id of the reply
    thanking the customer; None when it is neither (the router then routes it as usual)."""
    if inbound.thread_id is not None and inbound.thread_id != conversation.thread_id:
        return None
    words = texts(config, customer_language(session, conversation))
    if survey.status == "sent":
        rating = rating_in(inbound.text, config)
        if rating is None or now >= survey.expires_at:
            return None
        _store_inbound(session, log, inbound, conversation, now)
        record_rating(session, log, survey, conversation, rating, config, now)
        if config.ask_comment:
            until = now + timedelta(minutes=config.comment_minutes)
            conversation.metadata_ = {
                **conversation.metadata_,
                COMMENT_KEY: {"survey_id": survey.id, "until": until.isoformat()},
            }
            text, step = words.ask_comment, "ask"
        else:
            text, step = words.thanks, "thanks"
        return say(
            session, log, conversation, text, now, survey_id=survey.id, step=step, deliver=False
        )
    if not _awaiting_comment(conversation, survey, now):
        return None
    _store_inbound(session, log, inbound, conversation, now)
    record_comment(session, log, survey, conversation, inbound.text)
    conversation.metadata_ = {k: v for k, v in conversation.metadata_.items() if k != COMMENT_KEY}
    return say(
        session,
        log,
        conversation,
        words.thanks,
        now,
        survey_id=survey.id,
        step="thanks",
        deliver=False,
    )


def _store_inbound(
    session: Session,
    log: EventLog,
    inbound: Inbound,
    conversation: Conversation,
    now: datetime,
) -> None:
    """The customer's answer, kept in the resolved conversation like any message of theirs."""
    message = Message(
        conversation_id=conversation.id,
        channel=inbound.channel,
        external_id=inbound.external_id,
        direction="in",
        author_kind="customer",
        private=False,
        subject=inbound.subject[:500],
        text=inbound.text,
        html=inbound.html,
        attachments={"files": []},
        delivery_attempts=0,
        metadata_={
            **dict(inbound.metadata),
            "received_at": inbound.received_at.isoformat(),
            "csat_answer": True,
        },
        created_at=now,
    )
    session.add(message)
    session.flush()
    conversation.last_inbound_message_id = message.id
    log.add("message.created", conversation, {"message": message_with_files(message)})
