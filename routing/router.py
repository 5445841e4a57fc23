"""The router: consumes the unified queue and, in one transaction per message, dedupes, resolves
the customer, threads the conversation, stores the message and assigns; then notifies.

Messages that arrive together are routed in one database transaction with a savepoint each, so
a burst costs one commit instead of one per message while every message still succeeds or fails
on its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bots.normalize import detect_language
from channels.base import Inbound
from routing.assignment import pick_team
from routing.config import RoutingConfig
from routing.dispatch import Roster, assign_waiting, log_assignment
from routing.events import EventLog, Notify, conversation_summary, message_summary
from routing.identity import resolve_customer
from routing.teams import sync_teams
from routing.threads import find_or_open
from storage.db import SessionFactory
from storage.models import Conversation, Customer, CustomerLabel, Label, Message, utcnow
from storage.queue import Item
from storage.work import UnitOfWork

logger = logging.getLogger(__name__)

INBOUND_TOPIC = "inbound"
MAX_BATCH = 200


@dataclass(frozen=True, slots=True)
class Routed:
    """What became of one inbound message (tests and tools read it; the queue ignores it)."""

    duplicate: bool
    conversation_id: int | None = None
    message_id: int | None = None
    customer_id: int | None = None
    assignee_id: int | None = None


_Waiting = tuple[Inbound, "asyncio.Future[Routed]"]


class Router:
    def __init__(
        self,
        sessions: SessionFactory,
        config: RoutingConfig,
        *,
        channel_teams: Mapping[str, str | None],
        notify: Notify,
        clock: Callable[[], datetime] = utcnow,
        work: UnitOfWork | None = None,
    ) -> None:
        self._work = work or UnitOfWork.for_sessions(sessions)
        self._owns_work = work is None
        self._config = config
        self._channel_teams = channel_teams
        self._notify = notify
        self._clock = clock
        self._team_ids: dict[str, int] = {}
        self._waiting: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bring the teams table in line with the configuration. Does not consume anything."""
        self._team_ids = await self._work.run(sync_teams, self._config.teams)

    async def stop(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._owns_work:
            await self._work.close()

    async def handle(self, item: Item) -> None:
        """The queue handler: route one queued envelope."""
        await self.route(Inbound.from_json(item.payload))

    async def route(self, inbound: Inbound) -> Routed:
        """Route one message; messages routed concurrently share one transaction."""
        future: asyncio.Future[Routed] = asyncio.get_running_loop().create_future()
        self._waiting.append((inbound, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="router-flush")
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            inbounds = [inbound for inbound, _ in batch]
            try:
                results, log = await self._work.run(self._route_batch, inbounds)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            await self._notify(log.published())
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _route_batch(
        self, session: Session, inbounds: Sequence[Inbound]
    ) -> tuple[list[Routed | Exception], EventLog]:
        log = EventLog(session)
        roster = Roster(session)
        results = [self._route_one_safely(session, inbound, log, roster) for inbound in inbounds]
        roster.save()
        session.flush()
        return results, log

    def _route_one_safely(
        self, session: Session, inbound: Inbound, log: EventLog, roster: Roster
    ) -> Routed | Exception:
        """Route in a savepoint. A redelivered message trips the unique (channel, external_id)
        and is reported a duplicate; a concurrent router creating the same customer first trips
        another constraint, and a fresh attempt then finds what it created."""
        for attempt in range(3):
            checkpoint, load = log.checkpoint(), roster.snapshot()
            savepoint = session.begin_nested()
            try:
                routed = self._route_one(session, inbound, log, roster)
                savepoint.commit()
                return routed
            except IntegrityError as exc:
                savepoint.rollback()
                log.discard_since(checkpoint)
                roster.restore(load)
                if _is_duplicate(session, inbound):
                    return Routed(duplicate=True)
                if attempt == 2:
                    return exc
                logger.info(
                    "retrying %s/%s after a concurrent insert", inbound.channel, inbound.external_id
                )
            except Exception as exc:
                savepoint.rollback()
                log.discard_since(checkpoint)
                roster.restore(load)
                logger.exception("routing %s/%s failed", inbound.channel, inbound.external_id)
                return exc
        raise AssertionError("unreachable")

    def _route_one(
        self, session: Session, inbound: Inbound, log: EventLog, roster: Roster
    ) -> Routed:
        now = self._clock()
        resolved = resolve_customer(session, inbound.channel, inbound.sender, now=now)
        customer = resolved.customer
        threaded = find_or_open(
            session,
            inbound,
            customer.id,
            now=now,
            reopen_window=timedelta(hours=self._config.reopen_window_hours),
            team_id=self._team_for(session, inbound, customer),
            new_customer=resolved.created,
        )
        conversation = threaded.conversation
        # Decide the assignee before writing, so that a new conversation is inserted with it.
        previous = conversation.assignee_id
        decision = roster.choose(conversation, customer.owner_id)
        conversation.assignee_id = decision.agent_id
        if conversation.last_activity_at != now:
            conversation.last_activity_at = now
        if conversation.waiting_since is None:
            conversation.waiting_since = now
        session.flush()
        message = _store_message(session, conversation, inbound, now)
        session.flush()
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
        if decision.agent_id != previous:
            roster.moved(previous, decision.agent_id, now)
            log_assignment(log, conversation, previous, reason=decision.reason)
        return Routed(
            duplicate=False,
            conversation_id=conversation.id,
            message_id=message.id,
            customer_id=customer.id,
            assignee_id=decision.agent_id,
        )

    def _team_for(self, session: Session, inbound: Inbound, customer: Customer) -> int | None:
        labels: list[str] = []
        if any(rule.customer_labels for rule in self._config.rules):
            labels = list(
                session.scalars(
                    select(Label.name)
                    .join(CustomerLabel, CustomerLabel.label_id == Label.id)
                    .where(CustomerLabel.customer_id == customer.id)
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
        log = await self._work.run(self._tick, self._clock())
        await self._notify(log.published())

    def _tick(self, session: Session, now: datetime) -> EventLog:
        log = EventLog(session)
        due = session.scalars(
            select(Conversation).where(
                Conversation.status == "snoozed", Conversation.snoozed_until <= now
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
        session.flush()
        assign_waiting(session, log, now=now)
        return log


def _is_duplicate(session: Session, inbound: Inbound) -> bool:
    existing = session.scalar(
        select(Message.id).where(
            Message.channel == inbound.channel, Message.external_id == inbound.external_id
        )
    )
    return existing is not None


def _store_message(
    session: Session, conversation: Conversation, inbound: Inbound, now: datetime
) -> Message:
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
