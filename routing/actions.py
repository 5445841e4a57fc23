"""What agents do to conversations — reply, note, assign, transfer, change status, label — each
recorded as an event and, for replies, queued for delivery through the customer's channel.

Each action is a synchronous unit of work (run by `storage.work.UnitOfWork`) and an async method
that runs it and then publishes its events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from routing.dispatch import assign_waiting, release_agent, set_assignee
from routing.events import EventLog, Notify, conversation_summary, message_summary
from storage.db import SessionFactory
from storage.models import (
    Agent,
    Conversation,
    ConversationLabel,
    Customer,
    Label,
    Message,
    Team,
    utcnow,
)
from storage.queue import Queue
from storage.work import UnitOfWork

OUTBOUND_TOPIC = "outbound"
STATUSES = ("open", "pending", "snoozed", "resolved")
PRESENCES = ("online", "away", "offline")
T = TypeVar("T")


class NotFound(Exception):
    """The conversation, agent, team or message does not exist."""


class Invalid(Exception):
    """The action cannot be done as asked (a message says why)."""


class Actions:
    def __init__(
        self,
        sessions: SessionFactory,
        queue: Queue,
        notify: Notify,
        *,
        clock: Callable[[], datetime] = utcnow,
        work: UnitOfWork | None = None,
    ) -> None:
        self._work = work or UnitOfWork.for_sessions(sessions)
        self._queue = queue
        self._notify = notify
        self._clock = clock

    async def _run(self, fn: Callable[..., tuple[T, EventLog]], *args: Any) -> T:
        result, log = await self._work.run(fn, *args)
        await self._notify(log.published())
        return result

    async def reply(
        self, conversation_id: int, agent_id: int, text: str, *, private: bool = False
    ) -> Message:
        """Store the reply (or private note) first, then queue it for its channel's `send()`."""
        message = await self._run(_reply, conversation_id, agent_id, text, private, self._clock())
        if not private:
            await self.queue_delivery(message)
        return message

    async def queue_delivery(self, message: Message) -> None:
        """Queue a stored reply for sending; if the queue refuses, the reply shows as failed
        (and retryable) instead of waiting forever."""
        try:
            await self._queue.publish(
                OUTBOUND_TOPIC, f"conversation:{message.conversation_id}", str(message.id).encode()
            )
        except Exception as exc:
            reason = f"could not be queued for sending: {exc}"
            await self._run(_mark_failed, message.id, reason)
            message.delivery_status, message.delivery_error = "failed", reason

    async def retry_delivery(self, message_id: int, agent_id: int) -> Message:
        """An agent retries a failed outbound message."""
        message = await self._run(_requeue, message_id, agent_id)
        await self.queue_delivery(message)
        return message

    async def assign(
        self,
        conversation_id: int,
        *,
        actor_agent_id: int,
        agent_id: int | None,
        team_id: int | None = None,
        set_team: bool = False,
    ) -> Conversation:
        """Assign or transfer to an agent and/or a team; `agent_id=None` unassigns."""
        return await self._run(
            _assign, conversation_id, actor_agent_id, agent_id, team_id, set_team, self._clock()
        )

    async def set_status(
        self,
        conversation_id: int,
        status: str,
        *,
        actor_agent_id: int,
        snoozed_until: datetime | None = None,
    ) -> Conversation:
        if status not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(STATUSES)}")
        now = self._clock()
        if snoozed_until is not None and (status != "snoozed" or snoozed_until <= now):
            raise Invalid("snoozed_until must be a future time, with status snoozed")
        return await self._run(
            _set_status, conversation_id, status, actor_agent_id, snoozed_until, now
        )

    async def set_labels(
        self,
        conversation_id: int,
        *,
        add: Sequence[str],
        remove: Sequence[str],
        actor_agent_id: int,
    ) -> list[str]:
        return await self._run(_set_labels, conversation_id, add, remove, actor_agent_id)

    async def set_presence(self, agent_id: int, presence: str) -> None:
        """Online agents take queued conversations; offline ones hand theirs back."""
        if presence not in PRESENCES:
            raise Invalid(f"presence must be one of {', '.join(PRESENCES)}")
        await self._run(_set_presence, agent_id, presence, self._clock())

    async def update_agent(
        self,
        agent_id: int,
        *,
        capacity: int | None = None,
        active: bool | None = None,
        role: str | None = None,
        actor_agent_id: int,
    ) -> Agent:
        return await self._run(
            _update_agent, agent_id, capacity, active, role, actor_agent_id, self._clock()
        )


def _conversation(session: Session, conversation_id: int) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id}")
    return conversation


def _reply(
    session: Session,
    conversation_id: int,
    agent_id: int,
    text: str,
    private: bool,
    now: datetime,
) -> tuple[Message, EventLog]:
    log = EventLog(session)
    conversation = _conversation(session, conversation_id)
    message = Message(
        conversation_id=conversation.id,
        channel=conversation.channel,
        direction="out",
        author_kind="agent",
        author_agent_id=agent_id,
        private=private,
        text=text,
        attachments={"files": []},
        delivery_status=None if private else "queued",
        created_at=now,
        metadata_={},
    )
    session.add(message)
    conversation.last_activity_at = now
    if not private:
        conversation.waiting_since = None
        if conversation.first_response_at is None:
            conversation.first_response_at = now
        customer = session.get(Customer, conversation.customer_id)
        if customer is not None and customer.owner_id is None:
            customer.owner_id = agent_id
        if conversation.assignee_id is None:
            set_assignee(
                session,
                conversation,
                agent_id,
                log,
                reason="replied",
                actor_agent_id=agent_id,
                now=now,
            )
    session.flush()
    log.add(
        "note.created" if private else "message.created",
        conversation,
        {"message": message_summary(message)},
        actor_agent_id=agent_id,
    )
    return message, log


def _mark_failed(session: Session, message_id: int, reason: str) -> tuple[None, EventLog]:
    log = EventLog(session)
    message = session.get(Message, message_id)
    if message is not None:
        message.delivery_status = "failed"
        message.delivery_error = reason
        conversation = session.get(Conversation, message.conversation_id)
        log.add("message.delivery", conversation, {"message": message_summary(message)})
    return None, log


def _requeue(session: Session, message_id: int, agent_id: int) -> tuple[Message, EventLog]:
    log = EventLog(session)
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"message {message_id}")
    if message.delivery_status != "failed":
        raise Invalid("only a failed message can be retried")
    conversation = _conversation(session, message.conversation_id)
    message.delivery_status = "queued"
    message.delivery_error = None
    message.delivery_attempts = 0
    log.add(
        "message.delivery",
        conversation,
        {"message": message_summary(message)},
        actor_agent_id=agent_id,
    )
    return message, log


def _assign(
    session: Session,
    conversation_id: int,
    actor_agent_id: int,
    agent_id: int | None,
    team_id: int | None,
    set_team: bool,
    now: datetime,
) -> tuple[Conversation, EventLog]:
    log = EventLog(session)
    conversation = _conversation(session, conversation_id)
    if agent_id is not None:
        agent = session.get(Agent, agent_id)
        if agent is None or not agent.active:
            raise NotFound(f"agent {agent_id}")
    if set_team and team_id is not None and session.get(Team, team_id) is None:
        raise NotFound(f"team {team_id}")
    if set_team and conversation.team_id != team_id:
        previous = conversation.team_id
        conversation.team_id = team_id
        log.add(
            "conversation.team_changed",
            conversation,
            {"from": previous, "to": team_id, "conversation": conversation_summary(conversation)},
            actor_agent_id=actor_agent_id,
        )
    set_assignee(
        session,
        conversation,
        agent_id,
        log,
        reason="manual",
        actor_agent_id=actor_agent_id,
        now=now,
    )
    session.flush()
    if agent_id is None:
        assign_waiting(session, log, now=now)
    return conversation, log


def _set_status(
    session: Session,
    conversation_id: int,
    status: str,
    actor_agent_id: int,
    snoozed_until: datetime | None,
    now: datetime,
) -> tuple[Conversation, EventLog]:
    log = EventLog(session)
    conversation = _conversation(session, conversation_id)
    previous = conversation.status
    if previous != status or conversation.snoozed_until != snoozed_until:
        conversation.status = status
        conversation.snoozed_until = snoozed_until
        conversation.resolved_at = now if status == "resolved" else None
        log.add(
            "conversation.status_changed",
            conversation,
            {
                "from": previous,
                "to": status,
                "snoozed_until": snoozed_until.isoformat() if snoozed_until else None,
                "conversation": conversation_summary(conversation),
            },
            actor_agent_id=actor_agent_id,
        )
        session.flush()
        if previous == "open" and status != "open":
            assign_waiting(session, log, now=now)
    return conversation, log


def _set_labels(
    session: Session,
    conversation_id: int,
    add: Sequence[str],
    remove: Sequence[str],
    actor_agent_id: int,
) -> tuple[list[str], EventLog]:
    log = EventLog(session)
    conversation = _conversation(session, conversation_id)
    current = set(conversation_labels(session, conversation.id))
    added = False
    for name in add:
        if name in current:
            continue
        label = session.scalar(select(Label).where(Label.name == name))
        if label is None:
            label = Label(name=name)
            session.add(label)
            session.flush()
        session.add(ConversationLabel(conversation_id=conversation.id, label_id=label.id))
        current.add(name)
        added = True
    removing = [name for name in remove if name in current]
    if removing:
        ids = select(Label.id).where(Label.name.in_(removing))
        session.execute(
            delete(ConversationLabel).where(
                ConversationLabel.conversation_id == conversation.id,
                ConversationLabel.label_id.in_(ids),
            )
        )
        current.difference_update(removing)
    labels = sorted(current)
    if added or removing:
        log.add(
            "conversation.labels_changed",
            conversation,
            {"labels": labels},
            actor_agent_id=actor_agent_id,
        )
    return labels, log


def _set_presence(
    session: Session, agent_id: int, presence: str, now: datetime
) -> tuple[None, EventLog]:
    log = EventLog(session)
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id}")
    previous = agent.presence
    agent.presence = presence
    log.add(
        "agent.presence",
        None,
        {"agent_id": agent_id, "from": previous, "to": presence},
        actor_agent_id=agent_id,
    )
    session.flush()
    if presence == "offline":
        release_agent(session, agent_id, log, now=now)
    elif presence == "online":
        assign_waiting(session, log, now=now)
    return None, log


def _update_agent(
    session: Session,
    agent_id: int,
    capacity: int | None,
    active: bool | None,
    role: str | None,
    actor_agent_id: int,
    now: datetime,
) -> tuple[Agent, EventLog]:
    log = EventLog(session)
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id}")
    if capacity is not None:
        agent.capacity = capacity
    if role is not None:
        agent.role = role
    if active is not None:
        agent.active = active
    log.add(
        "agent.updated",
        None,
        {
            "agent_id": agent.id,
            "capacity": agent.capacity,
            "active": agent.active,
            "role": agent.role,
        },
        actor_agent_id=actor_agent_id,
    )
    session.flush()
    if active is False:
        release_agent(session, agent_id, log, now=now)
    else:
        assign_waiting(session, log, now=now)
    return agent, log


def conversation_labels(session: Session, conversation_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Label.name)
            .join(ConversationLabel, ConversationLabel.label_id == Label.id)
            .where(ConversationLabel.conversation_id == conversation_id)
            .order_by(Label.name)
        ).all()
    )
