"""The router: consumes the unified queue and, in one transaction per message, dedupes, resolves
the customer, threads the conversation, stores the message and assigns; then notifies."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bots.normalize import detect_language
from channels.base import Inbound
from routing.assignment import pick_team
from routing.config import RoutingConfig
from routing.dispatch import assign, assign_waiting
from routing.events import EventLog, Notify, conversation_summary, message_summary
from routing.identity import resolve_customer
from routing.teams import sync_teams
from routing.threads import find_or_open
from storage.db import SessionFactory
from storage.models import Conversation, Customer, CustomerLabel, Label, Message, utcnow
from storage.queue import Item

logger = logging.getLogger(__name__)

INBOUND_TOPIC = "inbound"


@dataclass(frozen=True, slots=True)
class Routed:
    """What became of one inbound message (tests and tools read it; the queue ignores it)."""

    duplicate: bool
    conversation_id: int | None = None
    message_id: int | None = None
    customer_id: int | None = None
    assignee_id: int | None = None


class Router:
    def __init__(
        self,
        sessions: SessionFactory,
        config: RoutingConfig,
        *,
        channel_teams: Mapping[str, str | None],
        notify: Notify,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._config = config
        self._channel_teams = channel_teams
        self._notify = notify
        self._clock = clock
        self._team_ids: dict[str, int] = {}

    async def start(self) -> None:
        """Bring the teams table in line with the configuration. Does not consume anything."""
        async with self._sessions.begin() as session:
            self._team_ids = await sync_teams(session, self._config.teams)

    async def handle(self, item: Item) -> None:
        """The queue handler: route one queued envelope."""
        await self.route(Inbound.from_json(item.payload))

    async def route(self, inbound: Inbound) -> Routed:
        # A concurrent router may create the same customer or contact point first; the unique
        # constraints stop the second, and a fresh attempt then finds what the first created.
        for attempt in range(3):
            try:
                return await self._route_once(inbound)
            except IntegrityError:
                if attempt == 2:
                    raise
                logger.info(
                    "retrying %s/%s after a concurrent insert", inbound.channel, inbound.external_id
                )
        raise AssertionError("unreachable")

    async def _route_once(self, inbound: Inbound) -> Routed:
        now = self._clock()
        async with self._sessions.begin() as session:
            log = EventLog(session)
            if await _is_duplicate(session, inbound):
                return Routed(duplicate=True)
            resolved = await resolve_customer(session, inbound.channel, inbound.sender)
            customer = resolved.customer
            team_id = await self._team_for(session, inbound, customer)
            threaded = await find_or_open(
                session,
                inbound,
                customer.id,
                now=now,
                reopen_window=timedelta(hours=self._config.reopen_window_hours),
                team_id=team_id,
            )
            conversation = threaded.conversation
            message = _store_message(session, conversation, inbound, now)
            await session.flush()
            if threaded.change != "continued":
                log.add(
                    f"conversation.{threaded.change}",
                    conversation,
                    {
                        "conversation": conversation_summary(conversation),
                        "customer": {
                            "id": customer.id,
                            "name": customer.name,
                            "new": resolved.created,
                            "linked_by": resolved.linked_by,
                        },
                    },
                )
            log.add("message.created", conversation, {"message": message_summary(message)})
            decision = await assign(session, conversation, log, now=now)
        await self._notify(log.published())
        return Routed(
            duplicate=False,
            conversation_id=conversation.id,
            message_id=message.id,
            customer_id=customer.id,
            assignee_id=decision.agent_id,
        )

    async def _team_for(
        self, session: AsyncSession, inbound: Inbound, customer: Customer
    ) -> int | None:
        labels: list[str] = []
        if any(rule.customer_labels for rule in self._config.rules):
            labels = list(
                (
                    await session.scalars(
                        select(Label.name)
                        .join(CustomerLabel, CustomerLabel.label_id == Label.id)
                        .where(CustomerLabel.customer_id == customer.id)
                    )
                ).all()
            )
        name = (
            pick_team(
                self._config.rules,
                channel=inbound.channel,
                language=detect_language(inbound.text),
                text=f"{inbound.subject}\n{inbound.text}",
                customer_labels=labels,
            )
            or self._channel_teams.get(inbound.channel)
            or self._config.default_team
        )
        return self._team_ids.get(name) if name else None

    async def tick(self) -> None:
        """Periodic upkeep: wake snoozed conversations whose time has come, and give waiting
        conversations to agents who became free."""
        now = self._clock()
        async with self._sessions.begin() as session:
            log = EventLog(session)
            due = (
                await session.scalars(
                    select(Conversation).where(
                        Conversation.status == "snoozed", Conversation.snoozed_until <= now
                    )
                )
            ).all()
            for conversation in due:
                conversation.status = "open"
                conversation.snoozed_until = None
                log.add(
                    "conversation.status_changed",
                    conversation,
                    {
                        "from": "snoozed",
                        "to": "open",
                        "reason": "snooze_ended",
                        "conversation": conversation_summary(conversation),
                    },
                )
            await session.flush()
            await assign_waiting(session, log, now=now)
        await self._notify(log.published())


async def _is_duplicate(session: AsyncSession, inbound: Inbound) -> bool:
    existing = await session.scalar(
        select(Message.id).where(
            Message.channel == inbound.channel, Message.external_id == inbound.external_id
        )
    )
    return existing is not None


def _store_message(
    session: AsyncSession, conversation: Conversation, inbound: Inbound, now: datetime
) -> Message:
    conversation.last_activity_at = now
    if conversation.waiting_since is None:
        conversation.waiting_since = now
    message = Message(
        conversation_id=conversation.id,
        channel=inbound.channel,
        external_id=inbound.external_id,
        direction="in",
        author_kind="customer",
        subject=inbound.subject[:500],
        text=inbound.text,
        html=inbound.html,
        attachments={
            "files": [
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "url": a.url,
                }
                for a in inbound.attachments
            ]
        },
        metadata_={**dict(inbound.metadata), "received_at": inbound.received_at.isoformat()},
        created_at=now,
    )
    session.add(message)
    return message
