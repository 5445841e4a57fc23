"""The router: consumes the unified queue and, in one transaction per message, dedupes, resolves
the customer, threads the conversation, stores the message and assigns; then notifies.

Messages that arrive together are routed in one database transaction with a savepoint each, so
a burst costs one commit instead of one per message while every message still succeeds or fails
on its own."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bots.normalize import detect_language
from channels.base import Inbound
from routing.actions import OUTBOUND_TOPIC
from routing.assignment import Decision, pick_team
from routing.bot_turns import BotTurns, Customer
from routing.config import RoutingConfig
from routing.csat import take_answers
from routing.delivery_reports import settle_delivery_reports
from routing.dispatch import Roster, assign_waiting, log_assignment
from routing.events import EventLog, Notify, conversation_summary, message_summary
from routing.identity import CustomerRef, resolve_customers
from routing.rules_store import StoredRules, load_enabled
from routing.sla_watch import watch_sla
from routing.teams import sync_teams
from routing.threads import (
    ConversationRef,
    create_conversations,
    save_conversations,
    thread_messages,
)
from storage.bulk import insert_ids
from storage.db import SessionFactory
from storage.models import Conversation, CustomerLabel, Label, Message, utcnow
from storage.queue import Handled, Item, Queue
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
    bot_message_id: int | None = None
    """The bot's answer to it, stored as queued (channels with `bot: faq`)."""


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
        bot_channels: Mapping[str, bool] | None = None,
        queue: Queue | None = None,
    ) -> None:
        """`bot_channels`: the channels with `bot: faq`, each with whether it shows buttons
        (`routing.bot_turns.button_channels`); `queue`: where the bot's replies are queued for
        delivery after the commit (without one, `DeliverySweep` finds them)."""
        self._work = work or UnitOfWork.for_sessions(sessions)
        self._owns_work = work is None
        self._config = config
        self._channel_teams = channel_teams
        self._notify = notify
        self._clock = clock
        self._team_ids: dict[str, int] = {}
        self._waiting: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None
        self._bot = (
            BotTurns(config.bot, config.business_hours, bot_channels, routing=config)
            if bot_channels
            else None
        )
        self._queue = queue
        self._publishing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bring the teams table in line with the configuration, and load the FAQ knowledge
        base into an empty database when a channel has the bot. Does not consume anything."""
        self._team_ids = await self._work.run(sync_teams, self._config.teams)
        if self._bot is not None:
            await self._load_knowledge_base(Path(self._config.bot.knowledge_base))

    async def _load_knowledge_base(self, path: Path) -> None:
        assert self._bot is not None
        try:
            loaded = await self._work.run(self._bot.load_knowledge_base, path)
        except ValueError as exc:
            raise ValueError(f"routing.bot.knowledge_base: {path}: {exc}") from exc
        if loaded:
            logger.info("loaded %s FAQ entries from %s", loaded, path)

    async def stop(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
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
            await self._queue_bot_replies(results)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def handle_in_transaction(self, session: Session, items: Sequence[Item]) -> Handled:
        """Route queue entries inside the transaction that publishes them (the embedded queue
        does this: one commit stores a message and routes it). What fails stays queued."""
        failed: dict[str, str] = {}
        decoded: list[tuple[Item, Inbound]] = []
        for item in items:
            try:
                decoded.append((item, Inbound.from_json(item.payload)))
            except (ValueError, KeyError, TypeError) as exc:
                failed[item.id] = f"{type(exc).__name__}: {exc}"
        results, log = self._route_batch(session, [inbound for _, inbound in decoded])
        for (item, _), result in zip(decoded, results, strict=True):
            if isinstance(result, Exception):
                failed[item.id] = f"{type(result).__name__}: {result}"
        published = log.published

        async def after_commit() -> None:
            await self._notify(published())
            # Called from inside the queue's own publishing: publishing to it now would wait on
            # itself, so the bot's replies are queued by a task of their own.
            task = asyncio.ensure_future(self._queue_bot_replies(results))
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

        return Handled(failed, after_commit)

    def _route_batch(
        self, session: Session, inbounds: Sequence[Inbound]
    ) -> tuple[list[Routed | Exception], EventLog]:
        """Route the batch in one go; if anything in it fails, route message by message in
        savepoints, so that one bad message fails alone."""
        log, roster = EventLog(session), Roster(session)
        if self._bot is not None:
            self._bot.refresh(session, inbounds)  # one query; re-indexes only after a change
        try:
            return self._route_batch_with(session, inbounds, log, roster), log
        except BaseException:
            log.discard_since(0)  # the caller rolls back: none of its events happened
            raise

    def _route_batch_with(
        self, session: Session, inbounds: Sequence[Inbound], log: EventLog, roster: Roster
    ) -> list[Routed | Exception]:
        if not inbounds:
            return []
        checkpoint, load = log.checkpoint(), roster.snapshot()
        rules = load_enabled(session)  # the admins' rules: one query per batch
        savepoint = session.begin_nested()
        results: list[Routed | Exception]
        try:
            results = list(self._route_all(session, inbounds, log, roster, rules))
            savepoint.commit()
        except Exception:
            savepoint.rollback()
            log.discard_since(checkpoint)
            roster.restore(load)
            results = [self._route_one_safely(session, i, log, roster, rules) for i in inbounds]
        roster.save()
        session.flush()
        return results

    def _route_one_safely(
        self,
        session: Session,
        inbound: Inbound,
        log: EventLog,
        roster: Roster,
        rules: StoredRules,
    ) -> Routed | Exception:
        """Route one message in a savepoint. A concurrent router that created the same customer
        or message first trips a unique constraint; a fresh attempt then finds what it made."""
        for attempt in range(3):
            checkpoint, load = log.checkpoint(), roster.snapshot()
            savepoint = session.begin_nested()
            try:
                [routed] = self._route_all(session, [inbound], log, roster, rules)
                savepoint.commit()
                return routed
            except IntegrityError as exc:
                savepoint.rollback()
                log.discard_since(checkpoint)
                roster.restore(load)
                if _stored(session, [inbound]):
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

    def _route_all(
        self,
        session: Session,
        inbounds: Sequence[Inbound],
        log: EventLog,
        roster: Roster,
        rules: StoredRules,
    ) -> list[Routed]:
        """The steps, each for the whole batch: dedupe → identity → conversation → assign →
        store the messages → record the events."""
        now = self._clock()
        stored = _stored(session, inbounds)
        fresh: list[Inbound] = []
        for inbound in inbounds:
            key = (inbound.channel, inbound.external_id)
            if key not in stored:
                stored.add(key)
                fresh.append(inbound)
        fresh = settle_delivery_reports(session, fresh, log)  # bounces: no conversation
        if not fresh:
            return [Routed(duplicate=True) for _ in inbounds]
        resolved = resolve_customers(session, fresh, now=now)
        fresh, resolved, answers = take_answers(
            self._config.csat, session, fresh, resolved, log, now=now
        )  # a satisfaction survey's answer: stored, never reopens, no bot turn, no assignment
        answered = {key: Routed(**answer) for key, answer in answers.items()}
        if not fresh:
            return [
                answered.get((i.channel, i.external_id)) or Routed(duplicate=True) for i in inbounds
            ]
        if rules.need_labels or any(rule.customer_labels for rule in self._config.rules):
            _load_labels(session, [r.customer for r in resolved])
        threaded = thread_messages(
            session,
            [
                (i, r.customer.id, self._team_for(i, r.customer, rules))
                for i, r in zip(fresh, resolved, strict=True)
            ],
            now=now,
            reopen_window=timedelta(hours=self._config.reopen_window_hours),
        )
        assignments = []
        for inbound, who, thread in zip(fresh, resolved, threaded, strict=True):
            conversation = thread.conversation
            previous = conversation.assignee_id
            with_bot = self._bot is not None and self._bot.serves(inbound.channel)
            if thread.change == "created" and with_bot:
                conversation.status, conversation.waiting_since = "bot", None
            elif conversation.status == "bot" and not with_bot:
                conversation.status = "open"  # the channel's bot was switched off since
            if conversation.status == "bot":  # the bot answers first; no agent yet
                conversation.last_activity_at = now
                assignments.append((previous, Decision(previous, "bot")))
                continue
            decision = roster.choose(conversation, who.customer.owner_id)
            conversation.assignee_id = decision.agent_id
            if decision.agent_id != previous:
                roster.moved(previous, decision.agent_id, now)
            conversation.last_activity_at = now
            if conversation.waiting_since is None:
                conversation.waiting_since = now
            assignments.append((previous, decision))
        create_conversations(session, [t.conversation for t in threaded])
        messages = _store_messages(session, fresh, [t.conversation for t in threaded], now)
        for thread, message in zip(threaded, messages, strict=True):  # ids ascend in a batch
            thread.conversation.last_inbound_message_id = message.id
        save_conversations(session, [t.conversation for t in threaded])
        _note_edits_and_start_payloads(session, fresh, [t.conversation for t in threaded])
        routed: dict[tuple[str, str], Routed] = answered
        for inbound, who, thread, message, (previous, decision) in zip(
            fresh, resolved, threaded, messages, assignments, strict=True
        ):
            conversation = thread.conversation
            if thread.change != "continued":
                log.add(
                    f"conversation.{thread.change}",
                    conversation,
                    {
                        "conversation": conversation_summary(conversation),
                        "customer": {
                            "id": who.customer.id,
                            "name": who.customer.name,
                            "new": who.created,
                            "linked_by": who.linked_by,
                        },
                    },
                )
            files = [
                {"name": a.filename, "content_type": a.content_type, "size": a.size, "url": a.url}
                for a in inbound.attachments
            ]
            log.add(
                "message.created",
                conversation,
                {"message": {**message_summary(message), "attachments": files}},
            )
            if decision.agent_id != previous:
                log_assignment(log, conversation, previous, reason=decision.reason)
            routed[(inbound.channel, inbound.external_id)] = Routed(
                duplicate=False,
                conversation_id=conversation.id,
                message_id=message.id,
                customer_id=who.customer.id,
                assignee_id=decision.agent_id,
            )
        if self._bot is not None:
            _take_bot_turns(self._bot, session, fresh, resolved, threaded, routed, log, roster, now)
        results: list[Routed] = []
        for inbound in inbounds:
            result = routed.pop((inbound.channel, inbound.external_id), None)
            results.append(result or Routed(duplicate=True))
        return results

    def _team_for(self, inbound: Inbound, customer: CustomerRef, rules: StoredRules) -> int | None:
        """config.yaml's rules, then the admins' rules, then the channel's and default team."""
        language = detect_language(inbound.text)
        text = f"{inbound.subject}\n{inbound.text}"
        name = pick_team(
            self._config.rules,
            channel=inbound.channel,
            language=language,
            text=text,
            customer_labels=customer.labels,
        )
        if name is None and rules.rules:
            team_id = rules.pick(
                channel=inbound.channel,
                language=language,
                text=text,
                customer_labels=customer.labels,
            )
            if team_id is not None:
                return team_id
        name = name or self._channel_teams.get(inbound.channel) or self._config.default_team
        return self._team_ids.get(name) if name else None

    async def _queue_bot_replies(self, results: Iterable[Routed | Exception]) -> None:
        """Queue the bot's committed replies for the Deliverer; one the queue refuses stays
        queued in the database, and `DeliverySweep` publishes it again."""
        if self._queue is None:
            return
        for result in results:
            if not isinstance(result, Routed) or result.bot_message_id is None:
                continue
            try:
                await self._queue.publish(
                    OUTBOUND_TOPIC,
                    f"conversation:{result.conversation_id}",
                    str(result.bot_message_id).encode(),
                )
            except Exception:
                logger.exception("bot reply %s: not queued; the sweep will", result.bot_message_id)

    async def tick(self) -> None:
        """Periodic upkeep: wake snoozed conversations whose time has come, give waiting
        conversations to agents who became free, and warn of and record SLA breaches."""
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
        watch_sla(session, log, self._config, now)  # SLA warnings and breaches that came due
        return log


def _take_bot_turns(
    bot: BotTurns,
    session: Session,
    fresh: Sequence[Inbound],
    resolved: Sequence[Any],
    threaded: Sequence[Any],
    routed: dict[tuple[str, str], Routed],
    log: EventLog,
    roster: Roster,
    now: datetime,
) -> None:
    """The bot's turns for the batch's messages on its channels, after their own events."""
    customers = [
        Customer(inbound, thread.conversation, who.customer.owner_id)
        for inbound, who, thread in zip(fresh, resolved, threaded, strict=True)
    ]
    queued = bot.take_turns(session, customers, log, roster, now)
    for position, message_id in queued.items():
        customer = customers[position]
        key = (customer.inbound.channel, customer.inbound.external_id)
        routed[key] = dataclasses.replace(
            routed[key],
            bot_message_id=message_id,
            assignee_id=customer.conversation.assignee_id,
        )


_STORED = select(Message.channel, Message.external_id).where(
    tuple_(Message.channel, Message.external_id).in_(bindparam("keys", expanding=True))
)


def _stored(session: Session, inbounds: Sequence[Inbound]) -> set[tuple[str, str]]:
    """Which of these messages are stored already (a redelivery)."""
    keys = list({(inbound.channel, inbound.external_id) for inbound in inbounds})
    rows = session.execute(_STORED, {"keys": keys})
    return {(channel, external_id) for channel, external_id in rows if external_id}


def _note_edits_and_start_payloads(
    session: Session, inbounds: Sequence[Inbound], conversations: Sequence[ConversationRef]
) -> None:
    """Chat channels' extras: an edit (metadata `edit_of`: the original's external id) marks the
    original `edited`; a deep-link payload (`start_payload`) is recorded on the conversation.
    One query and one update each, and only for batches that carry them."""
    originals = {(i.channel, i.metadata["edit_of"]) for i in inbounds if i.metadata.get("edit_of")}
    if originals:
        rows = session.execute(
            select(Message.id, Message.metadata_).where(
                tuple_(Message.channel, Message.external_id).in_(originals)
            )
        ).all()
        if rows:
            session.execute(
                update(Message),
                [{"id": row.id, "metadata_": {**row.metadata_, "edited": True}} for row in rows],
            )
    changed: dict[int, ConversationRef] = {}
    for inbound, conversation in zip(inbounds, conversations, strict=True):
        payload = inbound.metadata.get("start_payload")
        if payload and conversation.metadata_.get("start_payload") != payload:
            conversation.metadata_ = {**conversation.metadata_, "start_payload": payload}
            changed[conversation.id] = conversation
    if changed:
        session.execute(
            update(Conversation),
            [{"id": c.id, "metadata_": c.metadata_} for c in changed.values()],
        )


def _load_labels(session: Session, customers: Sequence[CustomerRef]) -> None:
    by_id = {customer.id: customer for customer in customers if customer.id}
    rows = session.execute(
        select(CustomerLabel.customer_id, Label.name)
        .join(Label, Label.id == CustomerLabel.label_id)
        .where(CustomerLabel.customer_id.in_(by_id))
    )
    for customer_id, name in rows:
        by_id[customer_id].labels.append(name)


@dataclass(frozen=True, slots=True)
class _StoredMessage:
    """An inbound message as just written, in the shape events describe messages."""

    id: int
    conversation_id: int
    subject: str
    text: str
    created_at: datetime
    direction: str = "in"
    author_kind: str = "customer"
    author_agent_id: int | None = None
    private: bool = False
    delivery_status: str | None = None
    delivery_error: str | None = None


def _store_messages(
    session: Session,
    inbounds: Sequence[Inbound],
    conversations: Sequence[ConversationRef],
    now: datetime,
) -> list[_StoredMessage]:
    rows = [
        {
            "conversation_id": conversation.id,
            "channel": inbound.channel,
            "external_id": inbound.external_id,
            "direction": "in",
            "author_kind": "customer",
            "private": False,
            "subject": inbound.subject[:500],
            "text": inbound.text,
            "html": inbound.html,
            "attachments": {
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
            "delivery_attempts": 0,
            "metadata_": {**dict(inbound.metadata), "received_at": inbound.received_at.isoformat()},
            "created_at": now,
        }
        for inbound, conversation in zip(inbounds, conversations, strict=True)
    ]
    ids = insert_ids(session, Message, rows)
    return [
        _StoredMessage(
            id=message_id,
            conversation_id=conversation.id,
            subject=inbound.subject[:500],
            text=inbound.text,
            created_at=now,
        )
        for message_id, inbound, conversation in zip(ids, inbounds, conversations, strict=True)
    ]
