"""Mentions and notifications: who a private note mentions (`@Name`, `@email` or by id), and
the notification rows and events that tell those agents.

`mentioned` is a pure function of the text and the roster, so that it is tested with plain data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from routing.events import ConversationLike, EventLog
from storage.models import Agent, Notification

NOTIFICATION_TEXT = 500
"""How much of a note a notification keeps: enough for the toast and the list."""

ZWNJ = "\u200c"


@dataclass(frozen=True, slots=True)
class Mentionable:
    id: int
    name: str
    email: str


def _ends_word(text: str, end: int) -> bool:
    """Whether a handle ending at `end` stops there, not in the middle of a longer word.

    Punctuation such as the full stop of a sentence or a Persian comma ends a handle; a letter,
    a digit, `_`, `-` or a zero-width non-joiner (part of a Persian word) does not."""
    if end >= len(text):
        return True
    following = text[end]
    return not (following.isalnum() or following in ("_", "-", ZWNJ))


def mentioned(text: str, agents: Iterable[Mentionable]) -> list[int]:
    """The ids of the agents mentioned in `text`, in the order first mentioned.

    At each `@` the longest matching handle wins, so `@Ali Rezaei` mentions Ali Rezaei and not
    also an agent named Ali. Matching ignores case (`@Sara@Example.com`)."""
    handles = sorted(
        (
            (handle.casefold(), agent.id)
            for agent in agents
            for handle in (agent.name.strip(), agent.email.strip())
            if handle
        ),
        key=lambda pair: -len(pair[0]),
    )
    folded = text.casefold()
    found: list[int] = []
    start = folded.find("@")
    while start != -1:
        at = start + 1
        for handle, agent_id in handles:
            if folded.startswith(handle, at) and _ends_word(folded, at + len(handle)):
                if agent_id not in found:
                    found.append(agent_id)
                break
        start = folded.find("@", at)
    return found


def notification_summary(notification: Notification, actor: Agent | None) -> dict[str, Any]:
    return {
        "id": notification.id,
        "kind": notification.kind,
        "conversation_id": notification.conversation_id,
        "message_id": notification.message_id,
        "actor": {"id": actor.id, "name": actor.name} if actor else None,
        "text": notification.text,
        "created_at": notification.created_at.isoformat(),
        "read_at": notification.read_at.isoformat() if notification.read_at else None,
    }


def notify(
    session: Session,
    log: EventLog,
    *,
    agent_id: int,
    kind: str,
    conversation: ConversationLike,
    message_id: int | None,
    actor_agent_id: int | None,
    text: str,
    now: datetime,
) -> Notification:
    """Store a notification and record `notification.created` for that agent alone.

    The event carries `agent_id` in its data: realtime delivers it to that agent only (the event
    is otherwise visible like any event of the conversation, so the filter must be applied)."""
    notification = Notification(
        agent_id=agent_id,
        kind=kind,
        conversation_id=conversation.id,
        message_id=message_id,
        actor_agent_id=actor_agent_id,
        text=text[:NOTIFICATION_TEXT],
        created_at=now,
    )
    session.add(notification)
    session.flush()
    actor = session.get(Agent, actor_agent_id) if actor_agent_id is not None else None
    log.add(
        "notification.created",
        conversation,
        {"agent_id": agent_id, "notification": notification_summary(notification, actor)},
        actor_agent_id=actor_agent_id,
    )
    return notification
