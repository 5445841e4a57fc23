"""The reaction that asks for a rating when a conversation is resolved: once per customer in
`quiet_hours`, and only when an agent wrote a public reply in it."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.config import CsatConfig
from routing.csat.asking import Mode, customer_language, say, texts
from routing.csat.links import LINK_PATH, link_key, sign
from routing.csat.views import csat_summary
from routing.events import EventLog, Happened
from storage.models import Conversation, CsatSurvey, Message, utcnow


class Surveys:
    """The reaction that asks for a rating when a conversation is resolved."""

    def __init__(
        self,
        config: CsatConfig,
        modes: Mapping[str, Mode],
        *,
        public_url: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._modes = dict(modes)
        self._public_url = public_url.rstrip("/")
        self._clock = clock

    def __call__(self, session: Session, log: EventLog, events: Sequence[Happened]) -> None:
        if not self._modes:
            return
        for event in events:
            if event.type != "conversation.status_changed" or event.data.get("to") != "resolved":
                continue
            summary = event.data.get("conversation")
            channel = summary.get("channel") if isinstance(summary, dict) else None
            if channel not in self._modes or event.conversation_id is None:
                continue
            self._ask(session, log, event.conversation_id)

    def _ask(self, session: Session, log: EventLog, conversation_id: int) -> None:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None or conversation.status != "resolved":
            return
        now = self._clock()
        config = self._config
        asked_lately = session.scalar(
            select(CsatSurvey.id)
            .where(
                CsatSurvey.customer_id == conversation.customer_id,
                CsatSurvey.sent_at > now - timedelta(hours=config.quiet_hours),
            )
            .limit(1)
        )
        if asked_lately is not None:
            return
        answered_by_agent = session.scalar(
            select(Message.id)
            .where(
                Message.conversation_id == conversation.id,
                Message.direction == "out",
                Message.author_kind == "agent",
                Message.private.is_(False),
            )
            .limit(1)
        )
        if answered_by_agent is None:
            return
        survey = CsatSurvey(
            conversation_id=conversation.id,
            customer_id=conversation.customer_id,
            channel=conversation.channel,
            agent_id=conversation.assignee_id,
            team_id=conversation.team_id,
            status="sent",
            sent_at=now,
            expires_at=now + timedelta(hours=config.expires_hours),
            comment="",
            nonce=secrets.token_urlsafe(24),
        )
        session.add(survey)
        session.flush()
        language = customer_language(session, conversation)
        words = texts(config, language)
        if self._modes[conversation.channel] == "buttons":
            text, choices = words.question, tuple(reversed(words.ratings))
        else:
            token = sign(link_key(session), survey.id, survey.nonce)
            suffix = "&lang=en" if language == "en" else ""
            links = [
                f"{words.ratings[rating - 1]}: "
                f"{self._public_url}{LINK_PATH}{token}?rating={rating}{suffix}"
                for rating in range(5, 0, -1)
            ]
            text, choices = "\n\n".join((words.question, words.link_intro, "\n".join(links))), ()
        message_id = say(
            session,
            log,
            conversation,
            text,
            now,
            survey_id=survey.id,
            step="question",
            choices=choices,
        )
        log.add(
            "csat.requested",
            conversation,
            {"csat": csat_summary(survey), "message_id": message_id, "language": language},
        )
