"""Delivering replies: each queued outbound message goes to its channel's `send()`; transient
failures retry with backoff, and every failure ends in a visible state, never silence.

A reply's `delivery_status` moves queued → sending → sent | failed (| queued again for a retry).
Only the deliverer that moves it from queued to sending (a compare-and-set) sends it, so two
queue entries or two consumers holding the same message send it once. `DeliverySweep` catches
what fell between the steps: a reply committed as queued whose publish never happened, and a
send that a crash interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from channels.base import (
    Attachment,
    Channel,
    DeliveryError,
    FollowsUpByEmail,
    Outbound,
    RepliesElsewhere,
    Sender,
    StoresFiles,
)
from routing.actions import OUTBOUND_TOPIC
from routing.events import EventLog, Notify, Published, message_summary
from routing.reply_window import template_of
from storage.blobs import delete_unsent_uploads
from storage.db import SessionFactory
from storage.models import (
    Agent,
    ContactPoint,
    Conversation,
    Customer,
    Identity,
    Message,
    utcnow,
)
from storage.queue import Item, Queue
from storage.work import UnitOfWork

logger = logging.getLogger(__name__)


def queue_marked_deliveries(queue: Queue) -> Notify:
    """An event listener that queues the outbound messages a unit of work marked with
    `EventLog.deliver` (a reaction's message: a survey, an automatic reply). It publishes in a
    task of its own: listeners run inside the embedded queue's own publishing (the router's
    in-transaction handler), which a publish awaited there would wait on forever. If the queue
    refuses, the message stays `queued` and `DeliverySweep` sends it later."""
    publishing: set[asyncio.Task[None]] = set()

    async def publish(marked: list[tuple[int, int]]) -> None:
        for conversation_id, message_id in marked:
            try:
                await queue.publish(
                    OUTBOUND_TOPIC, f"conversation:{conversation_id}", str(message_id).encode()
                )
            except Exception:
                logger.exception("message %s could not be queued; the sweep retries", message_id)

    async def queue_marked(events: Sequence[Published]) -> None:
        marked = [
            (event.conversation_id, int(message["id"]))
            for event in events
            if event.type == "message.created"
            and event.data.get("deliver")
            and event.conversation_id is not None
            and isinstance(message := event.data.get("message"), dict)
        ]
        if marked:
            task = asyncio.ensure_future(publish(marked))  # type: ignore[arg-type]
            publishing.add(task)
            task.add_done_callback(publishing.discard)

    return queue_marked


INTERRUPTED = "interrupted while sending; retry from the inbox"
SINCE = "delivery_since"
"""Metadata key: when the delivery status last moved (claimed, or queued again by a retry or a
sweep). The messages table has no column for it; the sweep reads it to tell stale from busy."""
CLAIM = "delivery_claim"
"""Metadata key: the token of the claim that is sending; only its holder records the outcome.
A token starts with the id of the process that holds it (`PROCESS`)."""
PROCESS = uuid.uuid4().hex[:16]


class Retry(Exception):
    """Raised to the queue so that it tries the delivery again after its backoff."""


@dataclass(frozen=True, slots=True)
class _Claimed:
    outbound: Outbound
    attempts: int
    token: str


class Deliverer:
    def __init__(
        self,
        sessions: SessionFactory,
        channels: Mapping[str, Channel],
        notify: Notify,
        *,
        max_attempts: int = 5,
        work: UnitOfWork | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._work = work or UnitOfWork.for_sessions(sessions)
        self._channels = channels
        self._notify = notify
        self._max_attempts = max_attempts
        self._clock = clock

    async def handle(self, item: Item) -> None:
        """The queue handler for the outbound topic."""
        await self.deliver(int(item.payload))

    async def deliver(self, message_id: int) -> str | None:
        """Send one message if it is still waiting; returns the status it ends in (None if
        there is no such message, or if this send was superseded while it ran).

        Claims the message first (queued → sending, atomically): a message someone else holds
        or already sent is left alone, so a repeated queue entry never sends it twice."""
        token = f"{PROCESS}:{uuid.uuid4().hex}"
        claimed = await self._work.run(_claim, message_id, token, self._clock())
        if not isinstance(claimed, _Claimed):
            return claimed
        outbound = claimed.outbound
        channel = self._channels.get(outbound.channel)
        if isinstance(channel, RepliesElsewhere) and channel.reply_channel:
            channel = self._channels.get(channel.reply_channel)  # a web form answers by email
        status, error, external_id = "sent", None, None
        retry = followed = False
        if channel is None:
            status, error = "failed", f"channel {outbound.channel!r} is not configured"
        elif outbound.attachments and not sends_files(channel):
            # Sending the text alone would let the agent believe the customer got the files.
            status, error = "failed", cannot_send_files(channel.name)
        else:
            try:
                delivery = await channel.send(outbound)
                external_id = delivery.external_id or None
                if not delivery.reached:
                    mail_id = await self._follow_up(channel, outbound)
                    followed = mail_id is not None
                    external_id = mail_id or external_id
            except DeliveryError as exc:
                status, error = "failed", exc.reason
                retry = not exc.permanent and claimed.attempts + 1 < self._max_attempts
            except Exception as exc:
                logger.exception(
                    "channel %s failed to send message %s", outbound.channel, outbound.message_id
                )
                status, error = "failed", f"{type(exc).__name__}: {exc}"
                retry = claimed.attempts + 1 < self._max_attempts
        log = await self._work.run(
            _record_delivery,
            message_id,
            token,
            "queued" if retry else status,
            error,
            external_id,
            self._clock(),
            followed=followed,
        )
        if log is None:
            # The sweep gave this send up for interrupted and someone has acted on that since
            # (an agent's retry): their state stands.
            logger.warning(
                "message %s: outcome %s of a superseded send dropped", message_id, status
            )
            return None
        await self._notify(log.published())
        if retry:
            raise Retry(error or "retry")
        return status

    async def _follow_up(self, channel: Channel, outbound: Outbound) -> str | None:
        """A live chat's reply that found the visitor gone also goes by email, through the
        channel's `away_reply_channel`, to the email the visitor gave. Returns the mail's id
        ("" if none), or None when there is nothing to follow up with. A failed mail raises
        `DeliveryError`, so the reply is retried or shown failed like any other."""
        if not isinstance(channel, FollowsUpByEmail) or not channel.away_reply_channel:
            return None
        email = outbound.recipient.email
        mailer = self._channels.get(channel.away_reply_channel)
        if not email or mailer is None:
            return None
        copy = replace(
            outbound,
            recipient=replace(outbound.recipient, external_id=email),
            subject=outbound.subject or channel.away_subject,
        )
        try:
            delivery = await mailer.send(copy)
        except DeliveryError as exc:
            raise DeliveryError(
                f"the visitor had left, and the email to {email} failed: {exc.reason}",
                permanent=exc.permanent,
            ) from exc
        return delivery.external_id


def sends_files(channel: Channel) -> bool:
    """Whether the channel can send a reply's attachments: one that is handed the blob store
    (`StoresFiles`) reads their bytes through it and sends them; any other has no way to."""
    return isinstance(channel, StoresFiles)


def cannot_send_files(channel: str) -> str:
    return (
        f"channel {channel!r} cannot send attachments; send the text without them, or the "
        "files another way"
    )


def outbound_attachments(message: Message) -> tuple[Attachment, ...]:
    """The files a stored message carries, as the channel fetches them (`BlobStore.get(url)`)."""
    files = message.attachments.get("files", []) if isinstance(message.attachments, dict) else []
    return tuple(
        Attachment(
            filename=str(f.get("filename") or f.get("name") or "attachment"),
            content_type=str(f.get("content_type") or "application/octet-stream"),
            size=int(f.get("size") or 0),
            url=str(f.get("url", "")),
        )
        for f in files
        if isinstance(f, dict)
    )


def _claim(session: Session, message_id: int, token: str, now: datetime) -> _Claimed | str | None:
    """Move the message from queued to sending and read what sending needs; if it is not
    queued, return its status (None if it does not exist) and change nothing."""
    won = session.execute(
        update(Message)
        .where(Message.id == message_id, Message.delivery_status == "queued")
        .values(delivery_status="sending")
    )
    message = session.get(Message, message_id, populate_existing=True)
    if not getattr(won, "rowcount", 0) or message is None:
        return message.delivery_status if message else None
    message.metadata_ = {**message.metadata_, SINCE: now.isoformat(), CLAIM: token}
    conversation = session.get(Conversation, message.conversation_id)
    assert conversation is not None
    customer = session.get(Customer, conversation.customer_id)
    identity = session.scalar(
        select(Identity)
        .where(
            Identity.customer_id == conversation.customer_id,
            Identity.channel == conversation.channel,
        )
        .order_by(Identity.id)
        .limit(1)
    )
    author = session.get(Agent, message.author_agent_id) if message.author_agent_id else None
    previous_inbound = session.scalar(
        select(Message.external_id)
        .where(Message.conversation_id == conversation.id, Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(1)
    )
    outbound = Outbound(
        message_id=message.id,
        channel=message.channel,
        recipient=Sender(
            external_id=identity.external_id if identity else "",
            name=customer.name if customer else "",
            email=_email_of(session, conversation.customer_id, identity),
        ),
        text=message.text,
        subject=conversation.subject,
        thread_id=conversation.thread_id,
        in_reply_to=previous_inbound,
        author_name=author.name if author else _bot_name(message.metadata_),
        attachments=outbound_attachments(message),
        quick_replies=quick_replies(message.metadata_),
        template=template_of(message.metadata_),
    )
    return _Claimed(outbound, message.delivery_attempts, token)


def _email_of(session: Session, customer_id: int, identity: Identity | None) -> str:
    """The customer's email address for this reply: the one they wrote from when it is theirs
    (an email conversation), else the one they gave last (a chat visitor's)."""
    emails = session.scalars(
        select(ContactPoint.value)
        .where(ContactPoint.customer_id == customer_id, ContactPoint.kind == "email")
        .order_by(ContactPoint.id.desc())
    ).all()
    own = identity.external_id.lower() if identity else ""
    return own if own in emails else (emails[0] if emails else "")


def quick_replies(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """The choices a message offers (the FAQ bot's), as its channel shows them."""
    value = metadata.get("quick_replies") if isinstance(metadata, Mapping) else None
    return tuple(v for v in value if isinstance(v, str) and v) if isinstance(value, list) else ()


def _bot_name(metadata: Mapping[str, Any]) -> str:
    bot = metadata.get("bot") if isinstance(metadata, Mapping) else None
    name = bot.get("name") if isinstance(bot, Mapping) else None
    return name if isinstance(name, str) else ""


def _record_delivery(
    session: Session,
    message_id: int,
    token: str,
    status: str,
    error: str | None,
    external_id: str | None,
    now: datetime,
    *,
    followed: bool = False,
) -> EventLog | None:
    """Record the outcome of the send that holds `token`; None if that claim was superseded.
    `followed`: the reply also went by email, the chat visitor having left."""
    message = session.get(Message, message_id, with_for_update=True, populate_existing=True)
    if message is None or message.metadata_.get(CLAIM) != token:
        return None
    # A send the sweep called interrupted did finish after all: its real outcome is better news.
    given_up = message.delivery_status == "failed" and message.delivery_error == INTERRUPTED
    if message.delivery_status != "sending" and not given_up:
        return None
    log = EventLog(session)
    conversation = session.get(Conversation, message.conversation_id)
    message.delivery_attempts += 1
    message.delivery_status = status
    message.delivery_error = error
    metadata = {key: value for key, value in message.metadata_.items() if key != CLAIM}
    if status == "queued":
        metadata[SINCE] = now.isoformat()  # the sweep's grace starts again with the retry
    else:
        metadata.pop(SINCE, None)
    if external_id:
        # Kept apart from `external_id`, whose (channel, external_id) space belongs to the
        # messages customers send: a provider's id for a reply must never collide with one.
        metadata["provider_id"] = external_id
    if followed:
        metadata["followed_by_email"] = True
    message.metadata_ = metadata
    log.add("message.delivery", conversation, {"message": message_summary(message)})
    return log


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep did: replies queued again, and sends given up as interrupted."""

    republished: tuple[int, ...] = ()
    interrupted: tuple[int, ...] = ()


class DeliverySweep:
    """Finds replies that would otherwise wait forever, run by the runtime now and then:

    - queued for longer than `queued_grace` (counted from when it was stored or last queued):
      its queue entry may never have been written (a crash between the commit and the publish),
      so it is published again. A message that does still have an entry gets a second one, which
      is harmless: the first entry to run claims it and the other finds it taken.
    - sending for longer than `sending_timeout`: the process sending it died. It is marked failed
      ("interrupted while sending; retry from the inbox"), not queued again, because nobody can
      tell whether the provider got it before the crash, and most channels (email, Telegram) have
      no way to drop a repeat: the agent decides, instead of the customer getting it twice.

    It also deletes files agents uploaded for a reply and never sent, once they are older than
    `unsent_uploads` (`server.uploads.unsent_hours`).
    """

    def __init__(
        self,
        sessions: SessionFactory,
        queue: Queue,
        notify: Notify,
        *,
        work: UnitOfWork | None = None,
        clock: Callable[[], datetime] = utcnow,
        queued_grace: timedelta = timedelta(minutes=2),
        sending_timeout: timedelta = timedelta(minutes=5),
        interval: float = 60.0,
        unsent_uploads: timedelta = timedelta(hours=24),
    ) -> None:
        self._sessions = sessions
        self._work = work or UnitOfWork.for_sessions(sessions)
        self._queue = queue
        self._notify = notify
        self._clock = clock
        self._queued_grace = queued_grace
        self._sending_timeout = sending_timeout
        self._interval = interval
        self._unsent_uploads = unsent_uploads

    async def run(self, stopping: asyncio.Event, *, alone: bool = False) -> None:
        """Sweep at once, then every `interval` seconds until `stopping` is set.

        `alone` says no other process delivers (the embedded SQLite default): what was queued
        before this start, or is being sent by another process, was left by a process that is
        gone, so the first sweep takes it without waiting out the grace period and the timeout."""
        started: datetime | None = self._clock() if alone else None
        while not stopping.is_set():
            try:
                await self.sweep(restarted=started)
                started = None
                await self.delete_unsent_uploads()
            except Exception:
                logger.exception("outbound sweep failed; trying again in %s s", self._interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._interval)

    async def sweep(self, *, restarted: datetime | None = None) -> Swept:
        """Publish stale queued replies again and fail interrupted sends, once.

        `restarted`: this process, the only one delivering, started then; replies queued before
        it and sends claimed by any other process count as stale whatever their age."""
        now = self._clock()
        queued_before = now - self._queued_grace
        stale = _Stale(
            queued_before=max(queued_before, restarted) if restarted else queued_before,
            sending_before=now - self._sending_timeout,
            others_gone=restarted is not None,
        )
        # Read outside the write path (on SQLite, writes wait for the one writer thread), then
        # lock and check again only the few rows that look stale.
        query = select(
            Message.id, Message.delivery_status, Message.created_at, Message.metadata_
        ).where(Message.direction == "out", Message.delivery_status.in_(("queued", "sending")))
        if not stale.others_gone:
            # A claim or retry comes after the creation: a reply created since cannot be stale.
            query = query.where(Message.created_at < stale.latest)
        async with self._sessions() as session:
            rows = await session.execute(query)
            candidates = [
                row.id for row in rows if stale(row.delivery_status, row.created_at, row.metadata_)
            ]
        if not candidates:
            return Swept()
        republish, interrupted, log = await self._work.run(_take_stale, candidates, stale, now)
        if interrupted:
            await self._notify(log.published())
        published: list[int] = []
        for message_id, conversation_id in republish:
            try:
                await self._queue.publish(
                    OUTBOUND_TOPIC, f"conversation:{conversation_id}", str(message_id).encode()
                )
            except Exception:
                logger.exception("message %s: could not queue it again; next sweep", message_id)
                continue
            published.append(message_id)
        if published or interrupted:
            logger.warning(
                "outbound sweep: queued again %s, interrupted while sending %s",
                published,
                interrupted,
            )
        return Swept(republished=tuple(published), interrupted=tuple(interrupted))

    async def delete_unsent_uploads(self) -> int:
        """Delete uploads no reply took within `unsent_uploads`; returns how many."""
        deleted = await self._work.run(delete_unsent_uploads, self._clock() - self._unsent_uploads)
        if deleted:
            logger.info("deleted %s uploads that were never sent", deleted)
        return deleted


@dataclass(frozen=True, slots=True)
class _Stale:
    """Which queued or sending replies one sweep takes."""

    queued_before: datetime
    sending_before: datetime
    others_gone: bool
    """Every other process that delivered is gone: their claims are interrupted sends."""

    @property
    def latest(self) -> datetime:
        return max(self.queued_before, self.sending_before)

    def __call__(
        self, status: str | None, created_at: datetime, metadata: Mapping[str, Any]
    ) -> bool:
        since = _since(created_at, metadata)
        if status == "queued":
            return since < self.queued_before
        if status != "sending":
            return False
        claim = metadata.get(CLAIM)
        ours = isinstance(claim, str) and claim.startswith(f"{PROCESS}:")
        return since < self.sending_before or (self.others_gone and not ours)


def _since(created_at: datetime, metadata: Mapping[str, Any]) -> datetime:
    """When the message's delivery status last moved: the claim or retry time, else its
    creation (a reply is stored as queued)."""
    value = metadata.get(SINCE)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return max(created_at, datetime.fromisoformat(value))
    return created_at


def _take_stale(
    session: Session, message_ids: Sequence[int], stale: _Stale, now: datetime
) -> tuple[list[tuple[int, int]], list[int], EventLog]:
    """Under row locks, check again and act: restart the grace of stale queued messages (so the
    next sweep does not publish them again at once) and fail interrupted sends. Rows another
    transaction holds (a deliverer recording) are skipped: they are not stuck."""
    log = EventLog(session)
    messages = session.scalars(
        select(Message)
        .where(Message.id.in_(message_ids))
        .order_by(Message.id)
        .with_for_update(skip_locked=True)
    ).all()
    republish: list[tuple[int, int]] = []
    interrupted: list[int] = []
    for message in messages:
        status = message.delivery_status
        if not stale(status, message.created_at, message.metadata_):
            continue
        if status == "queued":
            message.metadata_ = {**message.metadata_, SINCE: now.isoformat()}
            republish.append((message.id, message.conversation_id))
            continue
        message.delivery_status = "failed"
        message.delivery_error = INTERRUPTED
        interrupted.append(message.id)
        conversation = session.get(Conversation, message.conversation_id)
        log.add("message.delivery", conversation, {"message": message_summary(message)})
    return republish, interrupted, log
