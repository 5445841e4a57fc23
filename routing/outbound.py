"""Delivering replies: each queued outbound message goes to its channel's `send()`; transient
failures retry with backoff, and every failure ends in a visible state, never silence."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.base import Channel, DeliveryError, Outbound, Sender
from routing.events import EventLog, Notify, message_summary
from storage.db import SessionFactory
from storage.models import Agent, Conversation, Customer, Identity, Message
from storage.queue import Item
from storage.work import UnitOfWork

logger = logging.getLogger(__name__)


class Retry(Exception):
    """Raised to the queue so that it tries the delivery again after its backoff."""


class Deliverer:
    def __init__(
        self,
        sessions: SessionFactory,
        channels: Mapping[str, Channel],
        notify: Notify,
        *,
        max_attempts: int = 5,
        work: UnitOfWork | None = None,
    ) -> None:
        self._sessions = sessions
        self._work = work or UnitOfWork.for_sessions(sessions)
        self._channels = channels
        self._notify = notify
        self._max_attempts = max_attempts

    async def handle(self, item: Item) -> None:
        """The queue handler for the outbound topic."""
        await self.deliver(int(item.payload))

    async def deliver(self, message_id: int) -> str | None:
        """Send one message if it is still waiting; returns the status it ends in."""
        async with self._sessions() as session:
            message = await session.get(Message, message_id)
            if message is None or message.delivery_status != "queued":
                return message.delivery_status if message else None
            conversation = await session.get(Conversation, message.conversation_id)
            assert conversation is not None
            customer = await session.get(Customer, conversation.customer_id)
            identity = await session.scalar(
                select(Identity)
                .where(
                    Identity.customer_id == conversation.customer_id,
                    Identity.channel == conversation.channel,
                )
                .order_by(Identity.id)
                .limit(1)
            )
            author = (
                await session.get(Agent, message.author_agent_id)
                if message.author_agent_id
                else None
            )
            previous_inbound = await session.scalar(
                select(Message.external_id)
                .where(Message.conversation_id == conversation.id, Message.direction == "in")
                .order_by(Message.id.desc())
                .limit(1)
            )
        channel = self._channels.get(message.channel)
        outbound = Outbound(
            message_id=message.id,
            channel=message.channel,
            recipient=Sender(
                external_id=identity.external_id if identity else "",
                name=customer.name if customer else "",
            ),
            text=message.text,
            subject=conversation.subject,
            thread_id=conversation.thread_id,
            in_reply_to=previous_inbound,
            author_name=author.name if author else "",
        )
        status, error, external_id = "sent", None, None
        retry = False
        if channel is None:
            status, error = "failed", f"channel {message.channel!r} is not configured"
        else:
            try:
                delivery = await channel.send(outbound)
                external_id = delivery.external_id or None
            except DeliveryError as exc:
                status, error = "failed", exc.reason
                retry = not exc.permanent and message.delivery_attempts + 1 < self._max_attempts
            except Exception as exc:
                logger.exception(
                    "channel %s failed to send message %s", message.channel, message.id
                )
                status, error = "failed", f"{type(exc).__name__}: {exc}"
                retry = message.delivery_attempts + 1 < self._max_attempts
        await self._record(
            message.id, status="queued" if retry else status, error=error, external_id=external_id
        )
        if retry:
            raise Retry(error or "retry")
        return status

    async def _record(
        self, message_id: int, *, status: str, error: str | None, external_id: str | None
    ) -> None:
        log = await self._work.run(_record_delivery, message_id, status, error, external_id)
        await self._notify(log.published())


def _record_delivery(
    session: Session, message_id: int, status: str, error: str | None, external_id: str | None
) -> EventLog:
    log = EventLog(session)
    message = session.get(Message, message_id)
    assert message is not None
    conversation = session.get(Conversation, message.conversation_id)
    message.delivery_attempts += 1
    message.delivery_status = status
    message.delivery_error = error
    if external_id:
        # Kept apart from `external_id`, whose (channel, external_id) space belongs to the
        # messages customers send: a provider's id for a reply must never collide with one.
        message.metadata_ = {**message.metadata_, "provider_id": external_id}
    log.add("message.delivery", conversation, {"message": message_summary(message)})
    return log
