"""What agents do to conversations — reply, note, assign, transfer, change status, label — each
recorded as an event and, for replies, queued for delivery through the customer's channel.

Each action is a synchronous unit of work (run by `storage.work.UnitOfWork`) and an async method
that runs it and then publishes its events."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bots.normalize import detect_language
from channels.base import Channel
from channels.messenger_comments import is_comment_thread
from routing.bot_turns import silence
from routing.dispatch import assign_waiting, release_agent, set_assignee
from routing.events import EventLog, Notify, conversation_summary, message_summary
from routing.mentions import Mentionable, mentioned, notify
from routing.reply_window import (
    NO_RULES,
    ReplyRules,
    Window,
    last_customer_message,
    rendering,
    rules_of,
    template_message,
    template_metadata,
    template_of,
    window_at,
    wrote_at,
)
from storage.blobs import URL_PREFIX as UPLOAD_URL
from storage.db import SessionFactory
from storage.models import (
    Agent,
    Attachment,
    CannedResponse,
    ContactPoint,
    Conversation,
    ConversationLabel,
    Customer,
    CustomerLabel,
    Event,
    FaqSuggestion,
    Identity,
    Label,
    Message,
    Notification,
    ReadMarker,
    Team,
    utcnow,
)
from storage.queue import Queue
from storage.work import UnitOfWork

OUTBOUND_TOPIC = "outbound"
STATUSES = ("open", "pending", "snoozed", "resolved")
PRIORITIES = ("low", "normal", "high", "urgent")
MAX_FAQ_QUESTION = 2000
MAX_FAQ_ANSWER = 20000
PRESENCES = ("online", "away", "offline")
LOCALES = ("fa", "en")
T = TypeVar("T")


class NotFound(Exception):
    """The conversation, agent, team or message does not exist."""


class Invalid(Exception):
    """The action cannot be done as asked (a message says why)."""


class Conflict(Invalid):
    """The change would break a uniqueness rule (a label or shortcut of that name exists)."""


class WindowClosed(Invalid):
    """A free-form reply outside the channel's reply window; `closed_at` is when it closed
    (None: the customer never wrote here)."""

    def __init__(self, channel: str, closed_at: datetime | None, *, templates: bool) -> None:
        since = f"closed at {closed_at.isoformat()}" if closed_at else "not open: no message yet"
        then = "send an approved template instead" if templates else "it has no templates"
        super().__init__(
            f"reply window of channel {channel!r} {since} (free-form replies are allowed only "
            f"until then after the customer's last message); {then}, or wait for the customer "
            "to write again"
        )
        self.channel = channel
        self.closed_at = closed_at


_UNSET: Any = object()
"""Marks an optional argument that was not given, where `None` is a value (no owner)."""


class Actions:
    def __init__(
        self,
        sessions: SessionFactory,
        queue: Queue,
        notify: Notify,
        *,
        clock: Callable[[], datetime] = utcnow,
        work: UnitOfWork | None = None,
        channels: Mapping[str, Channel] | None = None,
    ) -> None:
        self._work = work or UnitOfWork.for_sessions(sessions)
        self._queue = queue
        self._notify = notify
        self._clock = clock
        # Read at each reply (not copied): the reply window and templates channels declare.
        self._channels: Mapping[str, Channel] = channels if channels is not None else {}

    async def _run(self, fn: Callable[..., tuple[T, EventLog]], *args: Any) -> T:
        result, log = await self._work.run(fn, *args)
        await self._notify(log.published())
        return result

    async def run(self, fn: Callable[..., tuple[T, EventLog]], *args: Any) -> T:
        """Run a unit of work of another module (`routing.admin_actions`) that records events:
        `fn(session, *args)` returns its result and its `EventLog`; the events are published
        after the commit. A uniqueness violation the function's own checks missed (a race) is a
        `Conflict`."""
        return await self._unique("that name is taken", fn, *args)

    def now(self) -> datetime:
        return self._clock()

    def reply_rules(self, channel: str) -> ReplyRules:
        """The reply window and templates the channel declares (none for most channels)."""
        return rules_of(self._channels.get(channel))

    async def reply(
        self,
        conversation_id: int,
        agent_id: int,
        text: str,
        *,
        private: bool = False,
        mentions: Sequence[int] = (),
        attachments: Sequence[str] = (),
    ) -> Message:
        """Store the reply (or private note) first, then queue it for its channel's `send()`.

        A private note notifies the agents in `mentions` and those written `@Name` or `@email`
        in its text; `mentions` on a reply to the customer is refused (`Invalid`).

        `attachments` are ids of files this agent uploaded for this conversation and has not
        sent yet; the message takes them, in that order. Any other id is a `NotFound`, one sent
        already (or twice in the list) `Invalid`, and then nothing is stored.

        On a channel with a reply window (WhatsApp, Messenger) a reply to the customer after the
        window closed is a `WindowClosed` (an `Invalid`), and nothing is stored; a private note
        is always allowed."""
        if mentions and not private:
            raise Invalid("mentions: only a private note mentions agents")
        if len(set(attachments)) != len(attachments):
            raise Invalid("attachments: an id is given twice")
        message = await self._run(
            _reply,
            conversation_id,
            agent_id,
            text,
            private,
            tuple(mentions),
            tuple(attachments),
            self._clock(),
            None if private else self.reply_rules,
        )
        if not private:
            await self.queue_delivery(message)
        return message

    async def send_template(
        self, conversation_id: int, agent_id: int, template_name: str, parameters: Sequence[str]
    ) -> Message:
        """Send one of the channel's approved templates (allowed outside the reply window):
        stored as a reply whose text reads the template and whose metadata names it, then
        queued; the deliverer hands it to the channel as `Outbound.template`. An unknown
        template, a wrong number of parameters or an empty one is `Invalid`, nothing stored."""
        message = await self._run(
            _send_template,
            conversation_id,
            agent_id,
            template_name,
            tuple(parameters),
            self._clock(),
            self.reply_rules,
        )
        await self.queue_delivery(message)
        return message

    async def reply_window(self, conversation_id: int) -> Window:
        """The conversation's reply window now."""
        return await self._work.run(_window_of, conversation_id, self.reply_rules, self._clock())

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
        """An agent retries a failed outbound message; free text is refused once the reply
        window has closed (`WindowClosed`), a template is not."""
        message = await self._run(_requeue, message_id, agent_id, self.reply_rules, self._clock())
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

    async def take_over(self, conversation_id: int, agent_id: int) -> Conversation:
        """The agent takes the conversation from the bot: the bot says nothing more in it, a
        conversation still with the bot opens, and one nobody holds is assigned to this agent.
        Taking over a conversation the bot never had, or has left already, just assigns it."""
        return await self._run(_take_over, conversation_id, agent_id, self._clock())

    async def suggest_faq(
        self,
        conversation_id: int,
        agent_id: int,
        question: str | None = None,
        answer: str | None = None,
    ) -> FaqSuggestion:
        """The agent accepts the inbox's offer to turn a question the bot could not answer and
        their reply into an FAQ entry: a pending suggestion for admins to review
        (`routing.admin_actions.approve_faq_suggestion` / `reject_faq_suggestion`).

        `question` defaults to the customer's question the bot handed over
        (`conversation.metadata_["bot"]["unanswered"]`), `answer` to the agent's latest reply in
        the conversation; `Invalid` when either is then missing or too long. The language is
        detected from the question."""
        return await self._run(
            _suggest_faq, conversation_id, agent_id, question, answer, self._clock()
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

    async def set_priority(
        self, conversation_id: int, priority: str, *, actor_agent_id: int
    ) -> Conversation:
        if priority not in PRIORITIES:
            raise Invalid(f"priority must be one of {', '.join(PRIORITIES)}")
        return await self._run(_set_priority, conversation_id, priority, actor_agent_id)

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

    async def mark_read(self, conversation_id: int, agent_id: int) -> int:
        """The agent has read the conversation to its latest message; returns that message's id
        (0 when it has none). Personal state: no event is recorded."""
        return await self._run(_mark_read, conversation_id, agent_id)

    async def read_notifications(self, agent_id: int, notification_id: int | None = None) -> int:
        """Mark one of the agent's notifications read (`NotFound` if it is not theirs), or all of
        them when `notification_id` is None; returns how many changed."""
        return await self._run(_read_notifications, agent_id, notification_id, self._clock())

    async def set_locale(self, agent_id: int, locale: str) -> None:
        if locale not in LOCALES:
            raise Invalid(f"locale must be one of {', '.join(LOCALES)}")
        await self._run(_set_locale, agent_id, locale)

    async def update_customer(
        self,
        customer_id: int,
        *,
        actor_agent_id: int,
        name: str | None = None,
        attributes: dict[str, Any] | None = None,
        add_labels: Sequence[str] = (),
        remove_labels: Sequence[str] = (),
        owner_id: int | None = _UNSET,
    ) -> Customer:
        """Change what an agent may edit of a customer; `owner_id=None` clears the owner."""
        change = _CustomerChange(name, attributes, tuple(add_labels), tuple(remove_labels))
        return await self._run(_update_customer, customer_id, change, owner_id, actor_agent_id)

    async def merge_customers(self, into_id: int, other_id: int, *, actor_agent_id: int) -> None:
        """Fold `other_id` into `into_id` (the same person): contact points, identities,
        conversations, labels and events move over, then the other customer is deleted."""
        if into_id == other_id:
            raise Invalid("other_id: a customer cannot be merged into itself")
        await self._run(_merge_customers, into_id, other_id, actor_agent_id, self._clock())

    async def save_canned(
        self,
        canned_id: int | None,
        *,
        actor_agent_id: int,
        shortcut: str | None = None,
        title: str | None = None,
        text: str | None = None,
    ) -> CannedResponse:
        """Create (`canned_id=None`) or change a canned response; a taken shortcut is a
        `Conflict`."""
        return await self._unique(
            "a canned response with that shortcut exists",
            _save_canned,
            canned_id,
            shortcut,
            title,
            text,
            actor_agent_id,
            self._clock(),
        )

    async def delete_canned(self, canned_id: int, *, actor_agent_id: int) -> None:
        await self._run(_delete_row, CannedResponse, "canned_response", canned_id, actor_agent_id)

    async def save_label(
        self,
        label_id: int | None,
        *,
        actor_agent_id: int,
        name: str | None = None,
        color: str | None = None,
    ) -> Label:
        """Create (`label_id=None`) or rename/recolour a label; a taken name is a `Conflict`."""
        return await self._unique(
            "a label with that name exists", _save_label, label_id, name, color, actor_agent_id
        )

    async def delete_label(self, label_id: int, *, actor_agent_id: int) -> None:
        """Delete a label; it comes off every conversation and customer that had it."""
        await self._run(_delete_row, Label, "label", label_id, actor_agent_id)

    async def _unique(self, message: str, fn: Callable[..., tuple[T, EventLog]], *args: Any) -> T:
        """Run `fn`, turning a uniqueness violation (a race the function's own check lost) into a
        `Conflict`; the transaction is rolled back, so nothing is half-written."""
        try:
            return await self._run(fn, *args)
        except IntegrityError:
            raise Conflict(message) from None


def _conversation(session: Session, conversation_id: int) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id}")
    return conversation


def attachment_views(message: Message) -> list[dict[str, Any]]:
    """A message's files as the API and events show them: `{id, name, content_type, size,
    url}` (`id` only for files agents uploaded)."""
    files = message.attachments.get("files", []) if isinstance(message.attachments, dict) else []
    return [
        {
            **({"id": f["id"]} if "id" in f else {}),
            "name": f.get("filename") or f.get("name") or "",
            "content_type": f.get("content_type", ""),
            "size": f.get("size", 0),
            "url": str(f.get("url", "")),
        }
        for f in files
        if isinstance(f, dict)
    ]


def message_with_files(message: Message) -> dict[str, Any]:
    """`message_summary` plus the message's attachments, for events and API answers."""
    return {**message_summary(message), "attachments": attachment_views(message)}


def _take_uploads(
    session: Session, ids: tuple[str, ...], conversation_id: int, agent_id: int
) -> list[dict[str, Any]]:
    """The files of `ids`, checked to be this agent's unsent uploads for this conversation (an
    upload of someone else, or for another conversation, is as good as missing)."""
    if not ids:
        return []
    rows = {
        row.id: row
        for row in session.execute(
            select(
                Attachment.id,
                Attachment.filename,
                Attachment.content_type,
                Attachment.size,
                Attachment.conversation_id,
                Attachment.uploaded_by,
                Attachment.message_id,
            ).where(Attachment.id.in_(ids))
        )
    }
    files = []
    for upload_id in ids:
        row = rows.get(upload_id)
        if row is None or row.conversation_id != conversation_id or row.uploaded_by != agent_id:
            raise NotFound(f"attachment {upload_id}")
        if row.message_id is not None:
            raise Invalid(f"attachments: {upload_id} was sent already; upload it again")
        files.append(
            {
                "id": row.id,
                "filename": row.filename,
                "content_type": row.content_type,
                "size": row.size,
                "url": UPLOAD_URL + row.id,
            }
        )
    return files


def _claim_uploads(session: Session, ids: tuple[str, ...], message_id: int) -> None:
    """Tie the uploads to their message, compare-and-set: a concurrent reply that took one
    first makes this one fail whole (rolled back) rather than share the file."""
    if not ids:
        return
    taken = session.execute(
        update(Attachment)
        .where(Attachment.id.in_(ids), Attachment.message_id.is_(None))
        .values(message_id=message_id)
    )
    if getattr(taken, "rowcount", 0) != len(ids):
        raise Invalid("attachments: sent already with another message; upload them again")


def _reply(
    session: Session,
    conversation_id: int,
    agent_id: int,
    text: str,
    private: bool,
    mentions: tuple[int, ...],
    uploads: tuple[str, ...],
    now: datetime,
    rules: Callable[[str], ReplyRules] | None = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[Message, EventLog]:
    """`rules`: check the channel's reply window first (a free-form reply); `metadata`: what
    the message carries besides (a template's name and values)."""
    log = EventLog(session)
    conversation = _conversation(session, conversation_id)
    if rules is not None:
        _require_open(session, conversation, rules(conversation.channel), now)
    files = _take_uploads(session, uploads, conversation.id, agent_id)
    message = Message(
        conversation_id=conversation.id,
        channel=conversation.channel,
        direction="out",
        author_kind="agent",
        author_agent_id=agent_id,
        private=private,
        text=text,
        attachments={"files": files},
        delivery_status=None if private else "queued",
        created_at=now,
        metadata_=dict(metadata or {}),
    )
    session.add(message)
    conversation.last_activity_at = now
    if not private:
        silence(conversation, log, agent_id=agent_id)
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
    _claim_uploads(session, uploads, message.id)
    log.add(
        "note.created" if private else "message.created",
        conversation,
        {"message": message_with_files(message)},
        actor_agent_id=agent_id,
    )
    if private:
        for mentioned_id in _mentioned_agents(session, text, mentions, author_id=agent_id):
            notify(
                session,
                log,
                agent_id=mentioned_id,
                kind="mention",
                conversation=conversation,
                message_id=message.id,
                actor_agent_id=agent_id,
                text=text,
                now=now,
            )
    _advance_marker(session, agent_id, conversation.id, message.id)
    return message, log


def _window(
    session: Session, conversation: Conversation, rules: ReplyRules, now: datetime
) -> Window:
    if rules.window is None or is_comment_thread(conversation.thread_id):
        # A public reply to a comment on a post is allowed at any time (Meta's rule).
        return window_at(NO_RULES, None, now)
    row = session.execute(last_customer_message(conversation.id)).first()
    return window_at(rules, wrote_at(row[0], row[1]) if row else None, now)


def _require_open(
    session: Session, conversation: Conversation, rules: ReplyRules, now: datetime
) -> None:
    window = _window(session, conversation, rules, now)
    if not window.open:
        raise WindowClosed(conversation.channel, window.closes_at, templates=bool(rules.templates))


def _window_of(
    session: Session, conversation_id: int, rules: Callable[[str], ReplyRules], now: datetime
) -> Window:
    conversation = _conversation(session, conversation_id)
    return _window(session, conversation, rules(conversation.channel), now)


def _send_template(
    session: Session,
    conversation_id: int,
    agent_id: int,
    name: str,
    parameters: tuple[str, ...],
    now: datetime,
    rules: Callable[[str], ReplyRules],
) -> tuple[Message, EventLog]:
    conversation = _conversation(session, conversation_id)
    try:
        sending, template = template_message(
            conversation.channel, rules(conversation.channel), name, parameters
        )
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    text = rendering(template, sending.parameters)
    metadata = {"template": template_metadata(sending)}
    return _reply(session, conversation.id, agent_id, text, False, (), (), now, None, metadata)


def _mentioned_agents(
    session: Session, text: str, mentions: tuple[int, ...], *, author_id: int
) -> list[int]:
    """The active agents a note mentions, by id or in its text, without its author.

    An id that is no active agent is refused, so that a mistyped mention is not silently lost;
    a `@word` that names nobody is just text."""
    active = session.execute(select(Agent.id, Agent.name, Agent.email).where(Agent.active)).all()
    known = {agent_id for agent_id, _, _ in active}
    if unknown := [agent_id for agent_id in mentions if agent_id not in known]:
        raise NotFound(f"agent {unknown[0]}")
    written = mentioned(text, [Mentionable(*row) for row in active]) if "@" in text else []
    return [a for a in dict.fromkeys([*mentions, *written]) if a != author_id]


def _advance_marker(session: Session, agent_id: int, conversation_id: int, message_id: int) -> None:
    """Move the agent's read marker forward to `message_id` (never back), in one statement that
    two requests racing on the same marker cannot make fail."""
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    statement = insert(ReadMarker).values(
        agent_id=agent_id, conversation_id=conversation_id, last_read_message_id=message_id
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[ReadMarker.agent_id, ReadMarker.conversation_id],
            set_={"last_read_message_id": statement.excluded.last_read_message_id},
            where=ReadMarker.last_read_message_id < statement.excluded.last_read_message_id,
        )
    )


def _mark_failed(session: Session, message_id: int, reason: str) -> tuple[None, EventLog]:
    log = EventLog(session)
    message = session.get(Message, message_id)
    if message is not None:
        message.delivery_status = "failed"
        message.delivery_error = reason
        conversation = session.get(Conversation, message.conversation_id)
        log.add("message.delivery", conversation, {"message": message_summary(message)})
    return None, log


def _requeue(
    session: Session,
    message_id: int,
    agent_id: int,
    rules: Callable[[str], ReplyRules],
    now: datetime,
) -> tuple[Message, EventLog]:
    log = EventLog(session)
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"message {message_id}")
    if message.delivery_status != "failed":
        raise Invalid("only a failed message can be retried")
    conversation = _conversation(session, message.conversation_id)
    if template_of(message.metadata_) is None:
        _require_open(session, conversation, rules(conversation.channel), now)
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
    silence(conversation, log, agent_id=actor_agent_id)
    if set_team and conversation.team_id != team_id:
        previous = conversation.team_id
        conversation.team_id = team_id
        log.add(
            "conversation.team_changed",
            conversation,
            {"from": previous, "to": team_id, "conversation": conversation_summary(conversation)},
            actor_agent_id=actor_agent_id,
        )
    changed = set_assignee(
        session,
        conversation,
        agent_id,
        log,
        reason="manual",
        actor_agent_id=actor_agent_id,
        now=now,
    )
    session.flush()
    if changed and agent_id is not None and agent_id != actor_agent_id:
        notify(
            session,
            log,
            agent_id=agent_id,
            kind="assigned",
            conversation=conversation,
            message_id=None,
            actor_agent_id=actor_agent_id,
            text=conversation.subject,
            now=now,
        )
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
    silence(conversation, log, agent_id=actor_agent_id)
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


def change_priority(
    conversation: Conversation, priority: str, log: EventLog, *, actor_agent_id: int | None
) -> bool:
    """Set the priority, recording `conversation.priority_changed` (nothing when it is the same)."""
    previous = conversation.priority
    if previous == priority:
        return False
    conversation.priority = priority
    log.add(
        "conversation.priority_changed",
        conversation,
        {"from": previous, "to": priority, "conversation": conversation_summary(conversation)},
        actor_agent_id=actor_agent_id,
    )
    return True


def _set_priority(
    session: Session, conversation_id: int, priority: str, actor_agent_id: int
) -> tuple[Conversation, EventLog]:
    log = EventLog(session)
    conversation = _conversation(session, conversation_id)
    change_priority(conversation, priority, log, actor_agent_id=actor_agent_id)
    return conversation, log


def _take_over(
    session: Session, conversation_id: int, agent_id: int, now: datetime
) -> tuple[Conversation, EventLog]:
    log = EventLog(session)
    conversation = _conversation(session, conversation_id)
    agent = session.get(Agent, agent_id)
    if agent is None or not agent.active:
        raise NotFound(f"agent {agent_id}")
    silence(conversation, log, agent_id=agent_id)
    if conversation.assignee_id is None:
        set_assignee(
            session,
            conversation,
            agent_id,
            log,
            reason="took_over",
            actor_agent_id=agent_id,
            now=now,
        )
    session.flush()
    return conversation, log


def faq_suggestion_summary(suggestion: FaqSuggestion) -> dict[str, Any]:
    return {
        "id": suggestion.id,
        "conversation_id": suggestion.conversation_id,
        "question": suggestion.question,
        "answer": suggestion.answer,
        "language": suggestion.language,
        "status": suggestion.status,
        "suggested_by": suggestion.suggested_by,
        "reviewed_by": suggestion.reviewed_by,
        "entry_id": suggestion.entry_id,
        "created_at": suggestion.created_at.isoformat() if suggestion.created_at else None,
        "reviewed_at": suggestion.reviewed_at.isoformat() if suggestion.reviewed_at else None,
    }


def _suggest_faq(
    session: Session,
    conversation_id: int,
    agent_id: int,
    question: str | None,
    answer: str | None,
    now: datetime,
) -> tuple[FaqSuggestion, EventLog]:
    log = EventLog(session)
    conversation = _conversation(session, conversation_id)
    state = conversation.metadata_.get("bot") if isinstance(conversation.metadata_, dict) else None
    if question is None and isinstance(state, dict):
        question = state.get("unanswered") if isinstance(state.get("unanswered"), str) else None
    if answer is None:
        answer = session.scalar(
            select(Message.text)
            .where(
                Message.conversation_id == conversation.id,
                Message.author_kind == "agent",
                Message.direction == "out",
                Message.private.is_(False),
            )
            .order_by(Message.id.desc())
            .limit(1)
        )
    question, answer = (question or "").strip(), (answer or "").strip()
    if not question:
        raise Invalid("question: the bot left no unanswered question here; write one")
    if not answer:
        raise Invalid("answer: no reply of an agent here yet; write one")
    if len(question) > MAX_FAQ_QUESTION:
        raise Invalid(f"question: at most {MAX_FAQ_QUESTION} characters")
    if len(answer) > MAX_FAQ_ANSWER:
        raise Invalid(f"answer: at most {MAX_FAQ_ANSWER} characters")
    suggestion = FaqSuggestion(
        conversation_id=conversation.id,
        question=question,
        answer=answer,
        language=detect_language(question),
        status="pending",
        suggested_by=agent_id,
        created_at=now,
    )
    session.add(suggestion)
    session.flush()
    log.add(
        "faq_suggestion.created",
        conversation,
        {"suggestion": faq_suggestion_summary(suggestion)},
        actor_agent_id=agent_id,
    )
    return suggestion, log


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


def _mark_read(session: Session, conversation_id: int, agent_id: int) -> tuple[int, EventLog]:
    log = EventLog(session)
    _conversation(session, conversation_id)
    latest = session.scalar(
        select(func.max(Message.id)).where(Message.conversation_id == conversation_id)
    )
    _advance_marker(session, agent_id, conversation_id, latest or 0)
    return latest or 0, log


def _read_notifications(
    session: Session, agent_id: int, notification_id: int | None, now: datetime
) -> tuple[int, EventLog]:
    log = EventLog(session)
    query = update(Notification).where(
        Notification.agent_id == agent_id, Notification.read_at.is_(None)
    )
    if notification_id is not None:
        owned = session.get(Notification, notification_id)
        if owned is None or owned.agent_id != agent_id:
            raise NotFound(f"notification {notification_id}")
        query = query.where(Notification.id == notification_id)
    changed = session.execute(
        query.values(read_at=now).execution_options(synchronize_session=False)
    )
    return int(getattr(changed, "rowcount", 0) or 0), log


def _set_locale(session: Session, agent_id: int, locale: str) -> tuple[None, EventLog]:
    log = EventLog(session)
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id}")
    agent.locale = locale
    return None, log


def _label_named(session: Session, name: str) -> Label:
    """The label of that name, created when it does not exist yet."""
    label = session.scalar(select(Label).where(Label.name == name))
    if label is None:
        label = Label(name=name, color="")
        session.add(label)
        session.flush()
    return label


def customer_labels(session: Session, customer_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Label.name)
            .join(CustomerLabel, CustomerLabel.label_id == Label.id)
            .where(CustomerLabel.customer_id == customer_id)
            .order_by(Label.name)
        ).all()
    )


@dataclass(frozen=True, slots=True)
class _CustomerChange:
    name: str | None
    attributes: dict[str, Any] | None
    add_labels: tuple[str, ...]
    remove_labels: tuple[str, ...]


def _update_customer(
    session: Session,
    customer_id: int,
    change: _CustomerChange,
    owner_id: int | None,
    actor_agent_id: int,
) -> tuple[Customer, EventLog]:
    log = EventLog(session)
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id}")
    if owner_id is not _UNSET and owner_id is not None:
        owner = session.get(Agent, owner_id)
        if owner is None or not owner.active:
            raise NotFound(f"agent {owner_id}")
    changed: dict[str, Any] = {}
    if change.name is not None and change.name != customer.name:
        customer.name = changed["name"] = change.name
    if change.attributes is not None and change.attributes != customer.attributes:
        customer.attributes = changed["attributes"] = dict(change.attributes)
    if owner_id is not _UNSET and owner_id != customer.owner_id:
        customer.owner_id = changed["owner_id"] = owner_id
    before = customer_labels(session, customer_id)
    for name in change.add_labels:
        if name not in before:
            label = _label_named(session, name)
            session.merge(CustomerLabel(customer_id=customer_id, label_id=label.id))
    removing = [name for name in change.remove_labels if name in before]
    if removing:
        session.execute(
            delete(CustomerLabel).where(
                CustomerLabel.customer_id == customer_id,
                CustomerLabel.label_id.in_(select(Label.id).where(Label.name.in_(removing))),
            )
        )
    session.flush()
    if (labels := customer_labels(session, customer_id)) != before:
        changed["labels"] = labels
    if changed:
        log.add(
            "customer.updated",
            None,
            {"customer_id": customer_id, "changed": changed},
            actor_agent_id=actor_agent_id,
            customer_id=customer_id,
        )
    return customer, log


def _merge_customers(
    session: Session, into_id: int, other_id: int, actor_agent_id: int, now: datetime
) -> tuple[None, EventLog]:
    log = EventLog(session)
    into = session.get(Customer, into_id)
    other = session.get(Customer, other_id)
    if into is None:
        raise NotFound(f"customer {into_id}")
    if other is None:
        raise NotFound(f"customer {other_id}")
    into.name = into.name or other.name
    into.owner_id = into.owner_id if into.owner_id is not None else other.owner_id
    into.attributes = {**other.attributes, **into.attributes}
    if other.last_contact_at and (
        into.last_contact_at is None or other.last_contact_at > into.last_contact_at
    ):
        into.last_contact_at = other.last_contact_at
    moved = {"customer_id": into_id}
    for model in (ContactPoint, Identity, Conversation, Event):
        session.execute(
            update(model)
            .where(model.customer_id == other_id)
            .values(moved)
            .execution_options(synchronize_session=False)
        )
    have = set(
        session.scalars(select(CustomerLabel.label_id).where(CustomerLabel.customer_id == into_id))
    )
    for label_id in session.scalars(
        select(CustomerLabel.label_id).where(CustomerLabel.customer_id == other_id)
    ).all():
        if label_id not in have:
            session.add(CustomerLabel(customer_id=into_id, label_id=label_id))
    session.flush()
    session.execute(delete(Customer).where(Customer.id == other_id))
    session.expunge(other)
    log.add(
        "customer.merged",
        None,
        {"customer_id": into_id, "merged_id": other_id, "merged_name": other.name},
        actor_agent_id=actor_agent_id,
        customer_id=into_id,
    )
    return None, log


def canned_summary(canned: CannedResponse) -> dict[str, Any]:
    return {
        "id": canned.id,
        "shortcut": canned.shortcut,
        "title": canned.title,
        "text": canned.text,
    }


def label_summary(label: Label) -> dict[str, Any]:
    return {"id": label.id, "name": label.name, "color": label.color}


def _save_canned(
    session: Session,
    canned_id: int | None,
    shortcut: str | None,
    title: str | None,
    text: str | None,
    actor_agent_id: int,
    now: datetime,
) -> tuple[CannedResponse, EventLog]:
    log = EventLog(session)
    if shortcut is not None:
        taken = session.scalar(select(CannedResponse.id).where(CannedResponse.shortcut == shortcut))
        if taken is not None and taken != canned_id:
            raise Conflict(f"a canned response with shortcut {shortcut!r} exists")
    if canned_id is None:
        if shortcut is None or text is None:
            raise Invalid("shortcut and text are required")
        canned = CannedResponse(created_by=actor_agent_id, created_at=now, title="", text="")
        session.add(canned)
    elif (found := session.get(CannedResponse, canned_id)) is None:
        raise NotFound(f"canned response {canned_id}")
    else:
        canned = found
    if shortcut is not None:
        canned.shortcut = shortcut
    if title is not None:
        canned.title = title
    if text is not None:
        canned.text = text
    session.flush()
    log.add(
        "canned_response.created" if canned_id is None else "canned_response.updated",
        None,
        {"canned_response": canned_summary(canned)},
        actor_agent_id=actor_agent_id,
    )
    return canned, log


def _save_label(
    session: Session,
    label_id: int | None,
    name: str | None,
    color: str | None,
    actor_agent_id: int,
) -> tuple[Label, EventLog]:
    log = EventLog(session)
    if name is not None:
        taken = session.scalar(select(Label.id).where(Label.name == name))
        if taken is not None and taken != label_id:
            raise Conflict(f"a label named {name!r} exists")
    if label_id is None:
        if name is None:
            raise Invalid("name is required")
        label = Label(name=name, color="")
        session.add(label)
    elif (found := session.get(Label, label_id)) is None:
        raise NotFound(f"label {label_id}")
    else:
        label = found
    if name is not None:
        label.name = name
    if color is not None:
        label.color = color
    session.flush()
    log.add(
        "label.created" if label_id is None else "label.updated",
        None,
        {"label": label_summary(label)},
        actor_agent_id=actor_agent_id,
    )
    return label, log


def _delete_row(
    session: Session, model: Any, kind: str, row_id: int, actor_agent_id: int
) -> tuple[None, EventLog]:
    log = EventLog(session)
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"{kind.replace('_', ' ')} {row_id}")
    session.delete(row)
    log.add(f"{kind}.deleted", None, {"id": row_id}, actor_agent_id=actor_agent_id)
    return None, log
