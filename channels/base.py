"""The contract every channel adapter implements, and the message types that cross it."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a message carries; `url` points at where the bytes can be fetched."""

    filename: str
    content_type: str
    size: int = 0
    url: str = ""


@dataclass(frozen=True, slots=True)
class Sender:
    """Who wrote, as the channel knows them. `external_id` is unique within the channel."""

    external_id: str
    name: str = ""
    email: str = ""
    phone: str = ""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One customer message, normalized. The queue carries it; the router consumes it.

    `external_id` is unique per channel (the provider's message id, or an idempotency key), so
    a redelivered message is stored once. `thread_id` groups messages the provider already
    groups (a chat id); `None` means "the sender's open conversation".
    """

    channel: str
    external_id: str
    sender: Sender
    text: str
    subject: str = ""
    thread_id: str | None = None
    html: str = ""
    attachments: tuple[Attachment, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def order_key(self) -> str:
        """Messages with the same key are processed in the order they were queued."""
        return f"{self.channel}:{self.sender.external_id}"

    def to_json(self) -> bytes:
        data = {
            "channel": self.channel,
            "external_id": self.external_id,
            "sender": {
                "external_id": self.sender.external_id,
                "name": self.sender.name,
                "email": self.sender.email,
                "phone": self.sender.phone,
            },
            "text": self.text,
            "subject": self.subject,
            "thread_id": self.thread_id,
            "html": self.html,
            "attachments": [
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "url": a.url,
                }
                for a in self.attachments
            ],
            "metadata": dict(self.metadata),
            "received_at": self.received_at.isoformat(),
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Inbound:
        data = json.loads(raw)
        return cls(
            channel=data["channel"],
            external_id=data["external_id"],
            sender=Sender(**data["sender"]),
            text=data["text"],
            subject=data.get("subject", ""),
            thread_id=data.get("thread_id"),
            html=data.get("html", ""),
            attachments=tuple(Attachment(**a) for a in data.get("attachments", ())),
            metadata=data.get("metadata", {}),
            received_at=datetime.fromisoformat(data["received_at"]),
        )


@dataclass(frozen=True, slots=True)
class Outbound:
    """A reply to deliver: what the agent or bot wrote, and where it goes on that channel."""

    message_id: int
    channel: str
    recipient: Sender
    text: str
    subject: str = ""
    thread_id: str | None = None
    in_reply_to: str | None = None
    author_name: str = ""
    attachments: tuple[Attachment, ...] = ()
    quick_replies: tuple[str, ...] = ()
    """Choices the customer can tap (the bot's suggestions): buttons where the channel has
    them, numbered lines where it does not."""
    template: TemplateMessage | None = None
    """An approved template to send instead of free text (outside the channel's reply
    window); `text` then holds a readable rendering of it for channels that need a fallback."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What `send()` reports: the provider's id for the sent message, if it gives one, and
    whether it reached the customer now (`False`: a live chat stored it for the customer's next
    visit, nobody had it open; see `FollowsUpByEmail`)."""

    external_id: str = ""
    reached: bool = True


class DeliveryError(Exception):
    """`send()` could not deliver. `permanent` failures are not retried."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Rejected(Exception):
    """An inbound request the channel refuses; `status` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


Emit = Callable[[Inbound], Awaitable[None]]
"""Durably queue one inbound message. Returns only once it is stored; raises if it is not."""


async def emit_or_refuse(emit: Emit, inbound: Inbound) -> None:
    """Queue a message a request brought, or refuse the request with 503 (the queue is down:
    the sender tries again later) — never a 500, and never an answer before it is queued."""
    try:
        await emit(inbound)
    except Exception as exc:
        logging.getLogger(__name__).exception("%s: could not queue a message", inbound.channel)
        raise Rejected(503, f"not queued ({type(exc).__name__}); try again") from None


@runtime_checkable
class CursorStore(Protocol):
    """Remembers a channel's small positions (IMAP UIDs, update offsets, idempotency keys)."""

    async def get(self, channel: str, key: str) -> str | None: ...

    async def set(self, channel: str, key: str, value: str) -> None: ...


class Blob(Protocol):
    """A stored file as `BlobStore.get` returns it."""

    @property
    def filename(self) -> str: ...

    @property
    def content_type(self) -> str: ...

    @property
    def data(self) -> bytes: ...


@runtime_checkable
class BlobStore(Protocol):
    """Keeps the files messages carry (mail attachments); a channel never sees the database.

    `put` returns the URL agents fetch the file from, which goes in `Attachment.url`; `owner`
    names the message the file belongs to (`"<channel>/<external id>"`), which is how the
    inbox decides who may download it."""

    async def put(self, data: bytes, filename: str, content_type: str, *, owner: str) -> str: ...

    async def get(self, url: str) -> Blob | None: ...


@runtime_checkable
class StoresFiles(Protocol):
    """A channel that keeps files: the composition root hands it the blob store before start."""

    def use_blobs(self, blobs: BlobStore) -> None: ...


@runtime_checkable
class RepliesElsewhere(Protocol):
    """A channel that cannot send by itself (a web form): `reply_channel` names the channel
    its conversations' replies go out through instead (an email channel), if any."""

    reply_channel: str | None


@runtime_checkable
class FollowsUpByEmail(Protocol):
    """A live chat whose replies also go by email when they did not reach the customer
    (`Delivery.reached` false): `away_reply_channel` names the email channel, if any, and
    `away_subject` is the mail's subject for a conversation that has none."""

    away_reply_channel: str | None
    away_subject: str


@dataclass(frozen=True, slots=True)
class Route:
    """An HTTP route a channel serves, mounted by the inbox under `/channels/{type}/{name}/`."""

    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]


class Channel(Protocol):
    """One configured channel. `start()` begins intake; it never touches a database or router."""

    name: str
    type: str

    async def start(self, emit: Emit, cursors: CursorStore) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, message: Outbound) -> Delivery: ...

    def routes(self) -> Sequence[Route]: ...

    def status(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ChatLine:
    """One message of a live chat as its customer may see it (never a private note).
    `external_id` is the Inbound's for the customer's own messages, else empty."""

    id: int
    author_kind: str  # customer | agent | bot
    author_name: str
    text: str
    created_at: datetime
    external_id: str = ""
    attachments: tuple[Attachment, ...] = ()
    quick_replies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatHistory:
    """What a returning chat visitor sees: messages after the one they saw last, the status of
    their latest conversation (`""` before the first), and how far agents have read them
    (`read_external_id`: the newest customer message an agent has read)."""

    lines: tuple[ChatLine, ...] = ()
    status: str = ""
    read_external_id: str = ""


@runtime_checkable
class ChatBackend(Protocol):
    """What a live-chat channel asks of the layers above (implemented in the inbox layer)."""

    async def history(self, channel: str, visitor: str, *, after: int, limit: int) -> ChatHistory:
        """Messages of the visitor's conversations on the channel with ids above `after`."""
        ...

    async def read_upto(self, channel: str, visitors: Sequence[str]) -> Mapping[str, str]:
        """Per visitor, the external id of their newest message an agent has read."""
        ...

    async def available(self, channel: str) -> bool:
        """Whether someone can answer now: within business hours and an agent online with
        free capacity in the channel's team."""
        ...

    async def visitor_typing(self, channel: str, visitor: str) -> None:
        """Tell the agents who see the visitor's conversation that the visitor is typing."""
        ...

    async def may_download(self, channel: str, visitor: str, url: str) -> bool:
        """Whether the file at `url` belongs to the visitor: their own upload, or a file of a
        message the visitor may see (never a private note's) in their conversations."""
        ...


@dataclass(frozen=True, slots=True)
class ChatSignal:
    """Something about a conversation its chat visitor sees live: `typing` (an agent, named
    by `value`), or `status` (the conversation's new status in `value`)."""

    channel: str
    visitor: str
    kind: str  # typing | status
    value: str = ""


@runtime_checkable
class FollowsConversations(Protocol):
    """A live-chat channel: the composition root hands it the backend before start and feeds
    it signals about its conversations after each commit."""

    def use_chats(self, backend: ChatBackend) -> None: ...

    def follow(self, signal: ChatSignal) -> None: ...


@runtime_checkable
class Polls(Protocol):
    """A channel that reads its provider by polling (an IMAP mailbox, Telegram's getUpdates).
    At scale exactly one process may read a mailbox or bot at a time, so the composition root
    can start the reading apart from the rest of the channel (sending works without it)."""

    @property
    def polls(self) -> bool:
        """Whether this channel, as configured, reads by polling (Telegram in webhook mode
        does not)."""
        ...

    def defer_polling(self) -> None:
        """Before `start()`: start everything but the reading; `start_polling()` does that."""
        ...

    async def start_polling(self) -> None: ...

    async def stop_polling(self) -> None:
        """Stop reading (what was read is queued first); sending goes on. Safe to call twice."""
        ...


@runtime_checkable
class HoldsConnections(Protocol):
    """A channel with long-lived client connections (WebSockets): the inbox closes them when it
    stops serving, before it waits for open requests to finish."""

    async def close_connections(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Template:
    """An approved message template a channel may send (WhatsApp's, configured by name and
    language); `parameters` names its placeholders in order ({{1}}, {{2}}, ...), and `text`
    is its body with those placeholders, shown to agents as a preview."""

    name: str
    language: str
    parameters: tuple[str, ...] = ()
    text: str = ""


@dataclass(frozen=True, slots=True)
class TemplateMessage:
    """A template to send: which one (`name`, `language`) and the values of its parameters,
    in order. A channel's `send()` turns it into its API's template message."""

    name: str
    language: str
    parameters: tuple[str, ...] = ()


@runtime_checkable
class HasReplyWindow(Protocol):
    """A channel that allows free-form replies only for a while after the customer's last
    message (Meta's 24 hours); `None` means no window after all (configured off)."""

    reply_window: timedelta | None


@runtime_checkable
class HasTemplates(Protocol):
    """A channel that can send approved templates, which are allowed outside the window."""

    templates: Sequence[Template]
