"""The FAQ bot's turns in conversations on channels configured with `bot: faq`.

A customer's first message on such a channel opens the conversation in status `bot`, unassigned;
each of their messages then gets a turn, stored and queued in the router's own transaction: the
entry's answer, two or three closest questions to choose from (picked by number or by the text of
a choice), or a handover — asked for, not known, or after `max_misses` turns of choices — which
says a human will answer (and, outside business hours, from when), opens the conversation and
assigns it through the router's `Roster`. An agent who replies, assigns or takes over silences
the bot in that conversation for good (`silence`).

The bot's state lives in `conversation.metadata_["bot"]`: `misses`, `silenced`, the `choices` it
offered last (`[{entry_id, question, score}]`), their `language`, and after a handover for want
of an answer `unanswered` (the customer's question, which the inbox offers to turn into an FAQ
suggestion with `routing.actions.Actions.suggest_faq`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bots.faq import Entry, FaqIndex, Match, Reply
from bots.knowledge import import_yaml, knowledge_version, load_entries
from bots.normalize import detect_language
from channels.base import Inbound
from routing.business_hours import BusinessCalendar, team_calendar
from routing.config import BotConfig, BusinessHoursConfig, RoutingConfig
from routing.dispatch import Roster, log_assignment
from routing.events import ConversationLike, EventLog, conversation_summary, message_summary
from routing.threads import ConversationRef, save_conversations
from storage.bulk import insert_ids
from storage.models import Conversation, FaqEntry, Message

logger = logging.getLogger(__name__)

MAX_TEXT = 4000
"""What the matcher reads of one message: a question is never longer; a pasted log is no
question, and the bot need not read all of it to know it cannot answer."""
QUESTION_WORDS = 3
"""Words from which an unanswered message counts as a question (not a greeting)."""
BUTTON_TYPES = frozenset({"telegram", "webchat", "whatsapp", "messenger", "instagram"})
"""Channel types that show quick replies as buttons; the others get numbered lines."""
Reason = Literal["asked", "unknown", "misses", "agent"]
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_NUMBER = re.compile(r"^\s*(\d{1,2})\s*[.)\-،,]?\s*$")
_FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_DAY_NAMES = {
    "fa": ("دوشنبه", "سه‌شنبه", "چهارشنبه", "پنجشنبه", "جمعه", "شنبه", "یکشنبه"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def button_channels(channels: Sequence[Any]) -> dict[str, bool]:
    """From the channels' configs: the names of those with `bot: faq`, each with whether it
    shows quick replies as buttons (the composition root hands this to the `Router`).

    A web form without a `reply_channel` cannot reach the customer at all: a bot there would
    answer into the void and keep the conversation from the agents, so it is left out."""
    served: dict[str, bool] = {}
    for c in channels:
        if getattr(c, "bot", None) != "faq" or not getattr(c, "enabled", True):
            continue
        if getattr(c, "type", "") == "webform" and not getattr(c, "reply_channel", None):
            logger.warning(
                "channel %s: bot: faq ignored; a web form's answers need a reply_channel", c.name
            )
            continue
        served[c.name] = getattr(c, "type", "") in BUTTON_TYPES
    return served


def next_opening(hours: BusinessHoursConfig | BusinessCalendar, now: datetime) -> datetime | None:
    """When the desk next opens (holidays skipped), in its time zone; None when it is open now
    (or never opens)."""
    calendar = hours if isinstance(hours, BusinessCalendar) else BusinessCalendar(hours)
    if calendar.is_open(now):
        return None
    return calendar.next_opening(now)


def _when(opening: datetime, language: str) -> str:
    day = _DAY_NAMES["fa" if language == "fa" else "en"][opening.weekday()]
    clock = opening.strftime("%H:%M")
    if language == "fa":
        return f"{day} ساعت {clock.translate(_FA_DIGITS)}"
    return f"{day} at {clock} ({opening.tzinfo})"


def handover_text(language: str, opening: datetime | None, *, unknown: bool = False) -> str:
    """What the bot says when it passes the conversation to a human."""
    if language == "fa":
        lead = "پاسخ این پرسش را نمی‌دانم. " if unknown else ""
        if opening is None:
            return lead + "پیامتان را به همکارانم سپردم؛ به‌زودی یکی از آن‌ها همین‌جا پاسخ می‌دهد."
        return (
            lead + "پیامتان را به همکارانم سپردم. الان خارج از ساعت کاری هستیم؛ "
            f"از {_when(opening, 'fa')} همین‌جا پاسخ می‌دهند."
        )
    lead = "I don't know the answer to that. " if unknown else ""
    if opening is None:
        return lead + "I've passed your message to our team; someone will answer you here shortly."
    return (
        lead + "I've passed your message to our team. We're closed now; someone will answer "
        f"you here from {_when(opening, 'en')}."
    )


def choose_text(language: str, questions: Sequence[str], *, buttons: bool) -> str:
    """The lead-in of a choice; numbered lines where the channel has no buttons."""
    if language == "fa":
        lead = "منظورتان یکی از این‌هاست؟"
        if buttons:
            return lead
        lines = [f"{str(n).translate(_FA_DIGITS)}. {q}" for n, q in enumerate(questions, 1)]
        tail = "شماره‌اش را بفرستید، یا بنویسید «اپراتور» تا همکارانم پاسخ دهند."
    else:
        lead = "Did you mean one of these?"
        if buttons:
            return lead
        lines = [f"{n}. {q}" for n, q in enumerate(questions, 1)]
        tail = 'Reply with its number, or write "human" to reach our team.'
    return "\n".join([lead, *lines, tail])


@dataclass(frozen=True, slots=True)
class Turn:
    """One bot turn, decided: what it says and what becomes of the conversation."""

    kind: Literal["answer", "choose", "unknown", "handover"]
    language: str
    text: str
    state: dict[str, Any]
    entry_id: int | None = None
    score: float | None = None
    choices: tuple[Match, ...] = ()
    handover: Reason | None = None

    def metadata(self, name: str, *, buttons: bool) -> dict[str, Any]:
        """The bot message's `metadata_`, as the contract between router and inbox says."""
        choices = [
            {"entry_id": m.entry.id, "question": m.entry.question, "score": round(m.score, 4)}
            for m in self.choices
        ]
        return {
            "bot": {
                "kind": self.kind,
                "entry_id": self.entry_id,
                "score": None if self.score is None else round(self.score, 4),
                "choices": choices,
                "handover": self.handover,
                "name": name,
            },
            "quick_replies": [m.entry.question for m in self.choices],
            **({"numbered": True} if choices and not buttons else {}),
        }


@dataclass
class Knowledge:
    """The enabled entries and their index, rebuilt when the knowledge base changes."""

    config: BotConfig
    version: tuple[int, str] | None = None
    index: FaqIndex | None = None
    entries: dict[int, Entry] = field(default_factory=dict)

    def refresh(self, session: Session) -> None:
        """One cheap query; the entries are read and indexed again only when they changed."""
        version = knowledge_version(session)
        if version == self.version and self.index is not None:
            return
        entries = load_entries(session)
        thresholds: dict[str, float] = {}
        if self.config.answer_at is not None:
            thresholds["answer_at"] = self.config.answer_at
        if self.config.suggest_at is not None:
            thresholds["suggest_at"] = self.config.suggest_at
        self.index = FaqIndex.build(entries, **thresholds)
        self.entries = {entry.id: entry for entry in entries}
        self.version = version

    def reply(self, text: str) -> Reply:
        """The matcher's reply; whatever goes wrong in it, the customer gets a human."""
        language = _language(text)
        if self.index is None:
            return Reply(kind="unknown", language=language)
        try:
            return self.index.reply(text[:MAX_TEXT])
        except Exception:
            logger.exception("the FAQ matcher failed; handing over")
            return Reply(kind="unknown", language=language)


def _language(text: str) -> str:
    try:
        language = detect_language(text[:MAX_TEXT])
    except Exception:
        return "fa"
    return language if language in ("fa", "en") else "fa"


def picked_choice(text: str, choices: Sequence[Mapping[str, Any]]) -> int | None:
    """The entry id the customer picked from the offered choices: by number ("2", "۲", "2.")
    or by the choice's text (what a tapped button sends; Telegram cuts it at 120 characters)."""
    if not choices:
        return None
    plain = text.translate(_DIGITS).strip()
    if number := _NUMBER.match(plain):
        index = int(number.group(1))
        if 1 <= index <= len(choices):
            return _entry_id(choices[index - 1])
        return None
    folded = " ".join(plain.split()).casefold()
    if not folded:
        return None
    for choice in choices:
        question = " ".join(str(choice.get("question", "")).split()).casefold()
        if question and (folded == question or folded == question[:120]):
            return _entry_id(choice)
    return None


def _entry_id(choice: Mapping[str, Any]) -> int | None:
    value = choice.get("entry_id")
    return value if isinstance(value, int) else None


def decide(
    knowledge: Knowledge,
    config: BotConfig,
    state: Mapping[str, Any],
    text: str,
    *,
    buttons: bool,
    opening: datetime | None,
) -> Turn:
    """The bot's next turn given what it said before (`state`) and the customer's message."""
    offered = state.get("choices") if isinstance(state.get("choices"), list) else []
    misses = int(state.get("misses") or 0)
    picked = picked_choice(text, offered or [])
    if picked is not None and (entry := knowledge.entries.get(picked)) is not None:
        score = next((c.get("score") for c in offered or [] if _entry_id(c) == picked), None)
        language = str(state.get("language") or entry.language)
        return Turn(
            "answer",
            language,
            entry.answer,
            {**state, "misses": 0, "choices": [], "language": language},
            entry_id=entry.id,
            score=float(score) if isinstance(score, int | float) else None,
        )
    reply = knowledge.reply(text)
    language = reply.language if reply.language in ("fa", "en") else "fa"
    wordy = any(ch.isalpha() for ch in text[:MAX_TEXT])
    if not wordy:  # emoji, digits: no language to tell
        language = str(state.get("language") or "fa")
    base = {**state, "choices": [], "language": language}
    if reply.kind == "answer" and reply.matches:
        best = reply.matches[0]
        return Turn(
            "answer",
            language,
            best.entry.answer,
            {**base, "misses": 0},
            entry_id=best.entry.id,
            score=best.score,
        )
    if reply.kind == "choose" and reply.matches and misses + 1 < config.max_misses:
        matches = reply.matches[:3]
        questions = [m.entry.question for m in matches]
        return Turn(
            "choose",
            language,
            choose_text(language, questions, buttons=buttons),
            {
                **base,
                "misses": misses + 1,
                "choices": [
                    {"entry_id": m.entry.id, "question": m.entry.question, "score": m.score}
                    for m in matches
                ],
            },
            score=matches[0].score,
            choices=matches,
        )
    reason: Reason
    if reply.kind == "handover":
        reason = "asked"
    elif reply.kind == "choose":
        reason = "misses"
    else:
        reason = "unknown"
    # A question worth an FAQ entry, and worth saying the bot does not know (not a "hello").
    question = wordy and reason != "asked" and len(text.split()) >= QUESTION_WORDS
    unanswered = {"unanswered": text[:MAX_TEXT].strip()} if question else {}
    return Turn(
        "unknown" if reason == "unknown" else "handover",
        language,
        handover_text(language, opening, unknown=question and reason == "unknown"),
        {
            **base,
            **unanswered,
            "misses": misses + 1 if reason == "misses" else misses,
            "handed_over": reason,
        },
        score=reply.matches[0].score if reply.matches else None,
        handover=reason,
    )


@dataclass(frozen=True, slots=True)
class _BotMessage:
    """A bot message as just written, in the shape events describe messages."""

    id: int
    conversation_id: int
    text: str
    created_at: datetime
    subject: str = ""
    direction: str = "out"
    author_kind: str = "bot"
    author_agent_id: int | None = None
    private: bool = False
    delivery_status: str | None = "queued"
    delivery_error: str | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer's message to the bot, with what the router knows of its conversation."""

    inbound: Inbound
    conversation: ConversationRef
    owner_id: int | None


class BotTurns:
    """The bot on the router's side: which channels it serves, its knowledge, its turns."""

    def __init__(
        self,
        config: BotConfig,
        hours: BusinessHoursConfig,
        channels: Mapping[str, bool],
        *,
        routing: RoutingConfig | None = None,
    ) -> None:
        """`routing`: where teams' own calendars come from (without it, `hours` for all)."""
        self._config = config
        self._hours = hours
        self._routing = routing
        self._channels = dict(channels)
        self.knowledge = Knowledge(config)

    def serves(self, channel: str) -> bool:
        return channel in self._channels

    def load_knowledge_base(self, session: Session, path: Path) -> int:
        """Import the YAML file into a database with no FAQ entries; returns how many. A missing
        file leaves the bot empty (it hands every conversation over); a bad one is an error."""
        if session.scalar(select(func.count()).select_from(FaqEntry)):
            return 0
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            logger.warning("routing.bot.knowledge_base: %s not found; the bot starts empty", path)
            return 0
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read it: {exc}") from exc
        result = import_yaml(session, text)
        return int(result.created)

    def refresh(self, session: Session, inbounds: Sequence[Inbound]) -> None:
        """Bring the knowledge up to date for a batch with messages for the bot. A failure here
        must not cost the customers' messages: the bot keeps what it knew (or, knowing nothing,
        hands over)."""
        if not any(inbound.channel in self._channels for inbound in inbounds):
            return
        try:
            with session.begin_nested():
                self.knowledge.refresh(session)
        except Exception:
            logger.exception("the FAQ knowledge base could not be loaded; using what was known")

    def take_turns(
        self,
        session: Session,
        customers: Sequence[Customer],
        log: EventLog,
        roster: Roster,
        now: datetime,
    ) -> dict[int, int]:
        """A turn for each message whose conversation is with the bot; returns the bot
        messages' ids by the customer message's position in `customers` (queue them after
        the commit)."""
        turns: list[tuple[int, ConversationRef, Turn]] = []
        openings: dict[int | None, datetime | None] = {}
        assigned: dict[int, tuple[int | None, str]] = {}
        for position, customer in enumerate(customers):
            conversation = customer.conversation
            state = conversation.metadata_.get("bot")
            state = dict(state) if isinstance(state, dict) else {}
            if conversation.status != "bot" or state.get("silenced"):
                continue
            if conversation.team_id not in openings:
                calendar = (
                    team_calendar(session, self._routing, conversation.team_id)
                    if self._routing is not None
                    else BusinessCalendar(self._hours)
                )
                openings[conversation.team_id] = next_opening(calendar, now)
            opening = openings[conversation.team_id]
            buttons = self._channels.get(conversation.channel, False)
            turn = decide(
                self.knowledge,
                self._config,
                state,
                customer.inbound.text,
                buttons=buttons,
                opening=opening,
            )
            conversation.metadata_ = {**conversation.metadata_, "bot": turn.state}
            if turn.handover is not None:
                moved = self._hand_over(conversation, customer.owner_id, turn.handover, roster, now)
                if moved is not None:
                    assigned[position] = moved
            turns.append((position, conversation, turn))
        if not turns:
            return {}
        rows: list[dict[str, Any]] = [
            {
                "conversation_id": conversation.id,
                "channel": conversation.channel,
                "external_id": None,
                "direction": "out",
                "author_kind": "bot",
                "private": False,
                "subject": "",
                "text": turn.text,
                "html": "",
                "attachments": {"files": []},
                "delivery_status": "queued",
                "delivery_attempts": 0,
                "metadata_": turn.metadata(
                    self.name(turn.language),
                    buttons=self._channels.get(conversation.channel, False),
                ),
                "created_at": now,
            }
            for _, conversation, turn in turns
        ]
        ids = insert_ids(session, Message, rows)
        changed = list({id(c): c for _, c, _ in turns}.values())
        save_conversations(session, changed)
        session.execute(
            update(Conversation), [{"id": c.id, "metadata_": c.metadata_} for c in changed]
        )
        queued: dict[int, int] = {}
        for (position, conversation, turn), message_id, row in zip(turns, ids, rows, strict=True):
            message = _BotMessage(message_id, conversation.id, turn.text, now)
            log.add(
                "message.created",
                conversation,
                {"message": {**message_summary(message), **row["metadata_"]}},
            )
            if turn.handover is not None:
                _log_opened(log, conversation)
                log.add(
                    "conversation.handed_over",
                    conversation,
                    {
                        "reason": turn.handover,
                        "message_id": message_id,
                        "conversation": conversation_summary(conversation),
                    },
                )
            if (moved := assigned.get(position)) is not None:
                log_assignment(log, conversation, moved[0], reason=moved[1])
            queued[position] = message_id
        return queued

    def name(self, language: str) -> str:
        return self._config.name.fa if language == "fa" else self._config.name.en

    def _hand_over(
        self,
        conversation: ConversationRef,
        owner_id: int | None,
        reason: Reason,
        roster: Roster,
        now: datetime,
    ) -> tuple[int | None, str] | None:
        """Open the conversation and give it to an agent the normal way (or the team queue);
        returns the previous assignee and the reason when the assignee changed."""
        conversation.status = "open"
        conversation.waiting_since = now
        previous = conversation.assignee_id
        decision = roster.choose(conversation, owner_id)
        conversation.assignee_id = decision.agent_id
        logger.debug("conversation %s handed over: %s", conversation.id, reason)
        if decision.agent_id == previous:
            return None
        roster.moved(previous, decision.agent_id, now)
        return previous, decision.reason


def _log_opened(
    log: EventLog, conversation: ConversationLike, *, actor_agent_id: int | None = None
) -> None:
    """The status change a handover is, for whoever follows statuses (lists, the chat widget)."""
    log.add(
        "conversation.status_changed",
        conversation,
        {
            "from": "bot",
            "to": "open",
            "reason": "handed_over",
            "conversation": conversation_summary(conversation),
        },
        actor_agent_id=actor_agent_id,
    )


def silence(conversation: Conversation, log: EventLog, *, agent_id: int) -> bool:
    """An agent stepped in: the bot says nothing more in this conversation, and one still with
    the bot opens (recorded as handed over, reason `agent`). Returns whether it was with it."""
    state = conversation.metadata_.get("bot") if isinstance(conversation.metadata_, dict) else None
    with_bot = conversation.status == "bot"
    if not with_bot and not isinstance(state, dict):
        return False
    if isinstance(state, dict) and state.get("silenced") and not with_bot:
        return False
    conversation.metadata_ = {
        **conversation.metadata_,
        "bot": {**(state or {}), "silenced": True},
    }
    if with_bot:
        conversation.status = "open"
        _log_opened(log, conversation, actor_agent_id=agent_id)
        log.add(
            "conversation.handed_over",
            conversation,
            {
                "reason": "agent",
                "agent_id": agent_id,
                "conversation": conversation_summary(conversation),
            },
            actor_agent_id=agent_id,
        )
    return with_bot
