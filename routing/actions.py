"""What agents do to conversations — reply, note, assign, transfer, change status, label — each
recorded as an event and, for replies, queued for delivery through the customer's channel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

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

OUTBOUND_TOPIC = "outbound"
STATUSES = ("open", "pending", "snoozed", "resolved")
PRESENCES = ("online", "away", "offline")


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
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._notify = notify
        self._clock = clock

    async def reply(
        self, conversation_id: int, agent_id: int, text: str, *, private: bool = False
    ) -> Message:
        """Store the reply (or private note) first, then queue it for its channel's `send()`."""
        now = self._clock()
        async with self._sessions.begin() as session:
            log = EventLog(session)
            conversation = await _conversation(session, conversation_id)
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
                customer = await session.get(Customer, conversation.customer_id)
                if customer is not None and customer.owner_id is None:
                    customer.owner_id = agent_id
                if conversation.assignee_id is None:
                    await set_assignee(
                        session,
                        conversation,
                        agent_id,
                        log,
                        reason="replied",
                        actor_agent_id=agent_id,
                        now=now,
                    )
            await session.flush()
            log.add(
                "note.created" if private else "message.created",
                conversation,
                {"message": message_summary(message)},
                actor_agent_id=agent_id,
            )
        await self._notify(log.published())
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
            async with self._sessions.begin() as session:
                log = EventLog(session)
                stored = await session.get(Message, message.id)
                assert stored is not None
                stored.delivery_status = "failed"
                stored.delivery_error = f"could not be queued for sending: {exc}"
                conversation = await session.get(Conversation, stored.conversation_id)
                log.add("message.delivery", conversation, {"message": message_summary(stored)})
            await self._notify(log.published())
            message.delivery_status, message.delivery_error = "failed", stored.delivery_error

    async def retry_delivery(self, message_id: int, agent_id: int) -> Message:
        """An agent retries a failed outbound message."""
        async with self._sessions.begin() as session:
            log = EventLog(session)
            message = await session.get(Message, message_id)
            if message is None:
                raise NotFound(f"message {message_id}")
            if message.delivery_status != "failed":
                raise Invalid("only a failed message can be retried")
            conversation = await _conversation(session, message.conversation_id)
            message.delivery_status = "queued"
            message.delivery_error = None
            message.delivery_attempts = 0
            log.add(
                "message.delivery",
                conversation,
                {"message": message_summary(message)},
                actor_agent_id=agent_id,
            )
        await self._notify(log.published())
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
        now = self._clock()
        async with self._sessions.begin() as session:
            log = EventLog(session)
            conversation = await _conversation(session, conversation_id)
            if agent_id is not None:
                agent = await session.get(Agent, agent_id)
                if agent is None or not agent.active:
                    raise NotFound(f"agent {agent_id}")
            if set_team and team_id is not None and await session.get(Team, team_id) is None:
                raise NotFound(f"team {team_id}")
            if set_team and conversation.team_id != team_id:
                previous = conversation.team_id
                conversation.team_id = team_id
                log.add(
                    "conversation.team_changed",
                    conversation,
                    {
                        "from": previous,
                        "to": team_id,
                        "conversation": conversation_summary(conversation),
                    },
                    actor_agent_id=actor_agent_id,
                )
            await set_assignee(
                session,
                conversation,
                agent_id,
                log,
                reason="manual",
                actor_agent_id=actor_agent_id,
                now=now,
            )
            await session.flush()
            if agent_id is None:
                await assign_waiting(session, log, now=now)
        await self._notify(log.published())
        return conversation

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
        async with self._sessions.begin() as session:
            log = EventLog(session)
            conversation = await _conversation(session, conversation_id)
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
                await session.flush()
                if previous == "open" and status != "open":
                    await assign_waiting(session, log, now=now)
        await self._notify(log.published())
        return conversation

    async def set_labels(
        self,
        conversation_id: int,
        *,
        add: Sequence[str],
        remove: Sequence[str],
        actor_agent_id: int,
    ) -> list[str]:
        async with self._sessions.begin() as session:
            log = EventLog(session)
            conversation = await _conversation(session, conversation_id)
            current = set(await conversation_labels(session, conversation.id))
            for name in add:
                if name in current:
                    continue
                label = await session.scalar(select(Label).where(Label.name == name))
                if label is None:
                    label = Label(name=name)
                    session.add(label)
                    await session.flush()
                session.add(ConversationLabel(conversation_id=conversation.id, label_id=label.id))
                current.add(name)
            removing = [name for name in remove if name in current]
            if removing:
                ids = select(Label.id).where(Label.name.in_(removing))
                await session.execute(
                    delete(ConversationLabel).where(
                        ConversationLabel.conversation_id == conversation.id,
                        ConversationLabel.label_id.in_(ids),
                    )
                )
                current.difference_update(removing)
            labels = sorted(current)
            if add or removing:
                log.add(
                    "conversation.labels_changed",
                    conversation,
                    {"labels": labels},
                    actor_agent_id=actor_agent_id,
                )
        await self._notify(log.published())
        return labels

    async def set_presence(self, agent_id: int, presence: str) -> None:
        """Online agents take queued conversations; offline ones hand theirs back."""
        if presence not in PRESENCES:
            raise Invalid(f"presence must be one of {', '.join(PRESENCES)}")
        now = self._clock()
        async with self._sessions.begin() as session:
            log = EventLog(session)
            agent = await session.get(Agent, agent_id)
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
            await session.flush()
            if presence == "offline":
                await release_agent(session, agent_id, log, now=now)
            elif presence == "online":
                await assign_waiting(session, log, now=now)
        await self._notify(log.published())

    async def update_agent(
        self,
        agent_id: int,
        *,
        capacity: int | None = None,
        active: bool | None = None,
        role: str | None = None,
        actor_agent_id: int,
    ) -> Agent:
        now = self._clock()
        async with self._sessions.begin() as session:
            log = EventLog(session)
            agent = await session.get(Agent, agent_id)
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
            await session.flush()
            if active is False:
                await release_agent(session, agent_id, log, now=now)
            else:
                await assign_waiting(session, log, now=now)
        await self._notify(log.published())
        return agent


async def _conversation(session: AsyncSession, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id}")
    return conversation


async def conversation_labels(session: AsyncSession, conversation_id: int) -> list[str]:
    return list(
        (
            await session.scalars(
                select(Label.name)
                .join(ConversationLabel, ConversationLabel.label_id == Label.id)
                .where(ConversationLabel.conversation_id == conversation_id)
                .order_by(Label.name)
            )
        ).all()
    )
