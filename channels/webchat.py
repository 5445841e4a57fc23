"""The website live chat: one script tag on the customer's site loads the widget, which talks to
this channel over a WebSocket (the frames are documented in docs/channels/webchat.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import WSMsgType, web
from pydantic import Field, SecretStr

from channels import webchat_protocol as protocol
from channels.base import (
    Attachment,
    BlobStore,
    ChatBackend,
    ChatSignal,
    CursorStore,
    Delivery,
    Emit,
    Inbound,
    Outbound,
    Rejected,
    Route,
    Sender,
)
from channels.config import ChannelConfig
from channels.request_body import read_body
from channels.webchat_files import check_upload, download_headers, safe_filename
from channels.webchat_limits import LocalLimit, MessageLimit, SharedLimits, Window
from channels.webchat_tokens import Signer, new_key

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "webchat_static"
KEY_CURSOR = "visitor-key"
READ_POLL_SECONDS = 1.0
READ_BATCH = 500
AVAILABILITY_TICKS = 10
TYPING_EVERY_SECONDS = 2.0
MAX_BAD_FRAMES = 20
FRAMES_PER_10_SECONDS = 100
"""Any frames at all, per socket: a widget sends a few (typing every 2 s, messages, pings)."""
OUTGOING_BACKLOG = 256
UNREAD_TRACKED = 50_000


class WebchatConfig(ChannelConfig):
    type: Literal["webchat"] = "webchat"
    allowed_origins: tuple[str, ...] = ()
    """Sites that may open the chat (`https://shop.example`); `*` allows any. The inbox's own
    origin is always allowed."""
    language: Literal["fa", "en", "auto"] = "auto"
    """The widget's language; `auto` follows the page's `<html lang>`."""
    ask_contact: Literal["none", "optional", "required"] = "optional"
    """Whether the widget asks name and email before the first message."""
    title: str = Field(default="", max_length=100)
    color: str = Field(default="#1f6feb", pattern=r"^#[0-9a-fA-F]{6}$")
    secret: SecretStr | None = None
    """Key that signs visitor tokens (`${ENV}`); without it one is generated and kept."""
    max_message_chars: int = Field(default=4000, ge=1, le=100_000)
    max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    messages_per_minute: int = Field(default=30, ge=1)
    """Per visitor; more are refused with `rate_limited` and the widget sends them later."""
    ip_messages_per_minute: int = Field(default=300, ge=1)
    connections_per_ip: int = Field(default=30, ge=1)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    upload_types: tuple[str, ...] = (
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
    )
    history_limit: int = Field(default=200, ge=1, le=2000)
    file_link_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    """How long a visitor's download link to a file of their chat stays valid."""
    away_reply_channel: str | None = None
    """An email channel: a reply that finds none of the visitor's sockets open also goes there,
    to the email the visitor gave (checked at config load like a web form's `reply_channel`)."""
    away_subject: str = Field(default="", max_length=200)
    """That mail's subject (after `Re: `); by default "گفتگوی شما با <title>" (English for an
    English widget)."""


def default_away_subject(config: WebchatConfig) -> str:
    if config.away_subject:
        return config.away_subject
    if config.language == "en":
        return f"Your chat with {config.title or 'us'}"
    return f"گفتگوی شما با {config.title or 'پشتیبانی'}"


@dataclass(eq=False)
class _Conn:
    """One open socket of the widget; frames to it go through `outgoing`, written in order."""

    ws: web.WebSocketResponse
    ip: str
    visitor: str = ""
    name: str = ""
    email: str = ""
    page: str = ""
    bad_frames: int = 0
    available: bool = True
    """What the widget was last told: whether someone can answer."""
    frames: Window = field(default_factory=lambda: Window(FRAMES_PER_10_SECONDS, 10.0))
    outgoing: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=OUTGOING_BACKLOG)
    )

    def push(self, payload: Mapping[str, Any]) -> None:
        """Queue a frame; a socket that fell this far behind is closed (the widget resumes)."""
        try:
            self.outgoing.put_nowait(protocol.dumps(dict(payload)))
        except asyncio.QueueFull:
            while not self.outgoing.empty():
                self.outgoing.get_nowait()
            self.outgoing.put_nowait(None)  # the writer closes the socket


class WebchatChannel:
    """Serves the widget, its WebSocket and its uploads; `send()` reaches the visitor's open
    sockets, and what they miss they get from the history when they come back."""

    type = "webchat"

    def __init__(self, config: WebchatConfig) -> None:
        self.name = config.name
        self.config = config
        self.away_reply_channel = config.away_reply_channel
        self.away_subject = default_away_subject(config)
        self._emit: Emit | None = None
        self._signer: Signer | None = None
        self._backend: ChatBackend | None = None
        self._blobs: BlobStore | None = None
        self._visitors: dict[str, set[_Conn]] = {}
        self._per_ip: Counter[str] = Counter()
        self._visitor_rate = Window(config.messages_per_minute)
        self._ip_rate = Window(config.ip_messages_per_minute)
        self._visitor_messages: MessageLimit = LocalLimit(self._visitor_rate)
        self._ip_messages: MessageLimit = LocalLimit(self._ip_rate)
        self._typing_rate = Window(1, TYPING_EVERY_SECONDS)
        self._queued: OrderedDict[str, None] = OrderedDict()
        """External ids queued lately: a resend is acknowledged without queueing it again."""
        self._unread: OrderedDict[str, str] = OrderedDict()
        """Visitor → external id of their newest message not yet known to be read (bounded:
        the oldest are forgotten; a returning visitor's hello tells again)."""
        self._read: dict[str, str] = {}
        self._reader: asyncio.Task[None] | None = None
        self._last_error = ""
        self._widget = (STATIC / "widget.js").read_text(encoding="utf-8")

    # Lifecycle -----------------------------------------------------------------------------

    def use_chats(self, backend: ChatBackend) -> None:
        self._backend = backend

    def use_blobs(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    def use_shared_limits(self, make: SharedLimits) -> None:
        """At scale: count visitors' and addresses' messages in windows every web process
        shares, instead of this process's own."""
        self._visitor_messages = make(
            f"webchat:{self.name}:visitor", self.config.messages_per_minute, 60.0
        )
        self._ip_messages = make(
            f"webchat:{self.name}:ip", self.config.ip_messages_per_minute, 60.0
        )

    async def start(self, emit: Emit, cursors: CursorStore) -> None:
        if self.config.secret is not None:
            key = self.config.secret.get_secret_value()
        else:
            key = await cursors.get(self.name, KEY_CURSOR) or ""
            if not key:
                key = new_key()
                await cursors.set(self.name, KEY_CURSOR, key)
        self._signer = Signer(key, self.name)
        self._emit = emit
        if self._reader is None:
            self._reader = asyncio.create_task(self._watch(), name=f"webchat-{self.name}-watch")

    async def stop(self) -> None:
        self._emit = None
        await self.close_connections()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def close_connections(self) -> None:
        """Close every socket (the widget reconnects and resumes) and refuse new ones."""
        self._emit = None
        closing = [
            conn.ws.close(code=1001, message=b"server restarting")
            for conns in list(self._visitors.values())
            for conn in conns
        ]
        await asyncio.gather(*closing, return_exceptions=True)

    def status(self) -> Mapping[str, Any]:
        return {
            "running": self._emit is not None,
            "connected_visitors": len(self._visitors),
            "connections": sum(len(c) for c in self._visitors.values()),
            "last_error": self._last_error,
        }

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/widget.js", self.handle_widget),
            Route("GET", "/ws", self.handle_ws),
            Route("POST", "/upload", self.handle_upload),
            Route("OPTIONS", "/upload", self.handle_preflight),
            Route("GET", "/files/{signed}", self.handle_file),
        ]

    # Replies and signals from above ---------------------------------------------------------

    async def send(self, message: Outbound) -> Delivery:
        """Push the reply to the visitor's open sockets. With none open it still succeeds (the
        widget fetches it with the history when the visitor is back) but reports
        `reached=False`, so that it can follow by email (`away_reply_channel`)."""
        visitor = message.recipient.external_id
        at = datetime.now(UTC).isoformat()
        reached = bool(self._visitors.get(visitor))
        self._push(visitor, protocol.outbound_frame(message, at, self._link(visitor)))
        return Delivery(reached=reached)

    def follow(self, signal: ChatSignal) -> None:
        if signal.kind == "typing":
            self._push(signal.visitor, {"type": "typing", "author": signal.value})
        elif signal.kind == "status":
            self._push(signal.visitor, {"type": "status", "status": signal.value})

    def _link(self, visitor: str) -> protocol.Link:
        """Download links for `visitor` to the files of their chat (see `handle_file`)."""
        signer = self._signer
        expires = int(time.time() + self.config.file_link_hours * 3600)

        def link(url: str) -> str:
            if signer is None or not url:
                return ""
            return "files/" + signer.file_token(visitor, url, expires)

        return link

    def _push(self, visitor: str, payload: Mapping[str, Any]) -> None:
        for conn in self._visitors.get(visitor, ()):
            conn.push(payload)

    async def _watch(self) -> None:
        """Every second, what has no event: read markers (an agent's personal state), polled
        only for visitors waiting on one; every few seconds whether anyone can answer."""
        ticks = 0
        while True:
            await asyncio.sleep(READ_POLL_SECONDS)
            ticks += 1
            if ticks % AVAILABILITY_TICKS == 0:
                await self._check_available()
            await self._poll_reads()

    async def _check_available(self) -> None:
        if not self._visitors or self._backend is None:
            return
        try:
            available = await self._backend.available(self.name)
        except Exception as exc:
            self._last_error = f"availability: {type(exc).__name__}: {exc}"
            logger.exception("webchat %s: checking availability failed", self.name)
            return
        for conns in self._visitors.values():
            for conn in conns:
                if conn.available != available:
                    conn.available = available
                    conn.push({"type": "availability", "available": available})

    async def _poll_reads(self) -> None:
        """Tell visitors when an agent has read their messages."""
        self._visitor_rate.forget_idle()
        self._ip_rate.forget_idle()
        self._typing_rate.forget_idle()
        waiting = [v for v in self._unread if v in self._visitors]
        if not waiting or self._backend is None:
            return
        for start in range(0, len(waiting), READ_BATCH):
            try:
                batch = waiting[start : start + READ_BATCH]
                read = await self._backend.read_upto(self.name, batch)
            except Exception as exc:
                self._last_error = f"read markers: {type(exc).__name__}: {exc}"
                logger.exception("webchat %s: reading read markers failed", self.name)
                return
            for visitor, external_id in read.items():
                self._mark_read(visitor, external_id)

    def _mark_read(self, visitor: str, external_id: str) -> None:
        if not external_id or self._read.get(visitor) == external_id:
            return
        self._read[visitor] = external_id
        if self._unread.get(visitor) == external_id:
            del self._unread[visitor]
        self._push(visitor, {"type": "read", "client_id": protocol.client_part(external_id)})

    # HTTP ------------------------------------------------------------------------------------

    def _origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if not origin:
            return False
        allowed = self.config.allowed_origins
        return "*" in allowed or origin in allowed or origin == f"{request.scheme}://{request.host}"

    def _cors(self, request: web.Request) -> dict[str, str]:
        if not self._origin_allowed(request):
            return {}
        return {
            "Access-Control-Allow-Origin": request.headers["Origin"],
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Filename",
            "Vary": "Origin",
        }

    def _widget_settings(self) -> dict[str, Any]:
        c = self.config
        return {
            "channel": self.name,
            "language": c.language,
            "askContact": c.ask_contact,
            "title": c.title,
            "color": c.color,
            "maxChars": c.max_message_chars,
            "maxUploadBytes": c.max_upload_bytes,
            "uploadTypes": list(c.upload_types),
        }

    async def handle_widget(self, request: web.Request) -> web.StreamResponse:
        settings = json.dumps(self._widget_settings(), ensure_ascii=False)
        body = self._widget.replace("/*SETTINGS*/null", settings, 1)
        return web.Response(
            text=body,
            content_type="application/javascript",
            charset="utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    async def handle_preflight(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204, headers=self._cors(request))

    async def handle_upload(self, request: web.Request) -> web.StreamResponse:
        headers = self._cors(request)
        try:
            return web.json_response(await self._upload(request), status=201, headers=headers)
        except Rejected as exc:
            return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)

    async def _upload(self, request: web.Request) -> dict[str, Any]:
        if self._signer is None or self._blobs is None:
            raise Rejected(503, "channel is not running")
        if not self._origin_allowed(request):
            raise Rejected(403, "origin not allowed")
        auth = request.headers.get("Authorization", "")
        visitor = self._signer.visitor(auth.removeprefix("Bearer ").strip())
        if visitor is None:
            raise Rejected(401, "Authorization: Bearer <visitor token> required")
        try:
            client_id = protocol.client_id_of(request.query.get("client_id"))
        except protocol.BadFrame as exc:
            raise Rejected(400, exc.message) from None
        if await self._visitor_messages.retry_after(visitor):
            raise Rejected(429, "too many messages; wait a minute")
        data = await read_body(request, self.config.max_upload_bytes)
        filename = safe_filename(unquote(request.headers.get("X-Filename", "file")))
        kind = check_upload(data, filename, self.config.upload_types)
        url = await self._blobs.put(
            data, filename, kind, owner=f"{self.name}/{visitor}/{client_id}"
        )
        receipt = self._signer.receipt(visitor, client_id, url, filename, kind)
        return {
            "url": url,
            "filename": filename,
            "content_type": kind,
            "size": len(data),
            "receipt": receipt,
        }

    async def handle_file(self, request: web.Request) -> web.StreamResponse:
        """A file of the visitor's chat, by a signed link the widget was given: only to that
        visitor (the token binds visitor and file), and only while the file still belongs to
        their conversations. Always a download; nothing in it renders or runs here."""
        if self._signer is None or self._blobs is None or self._backend is None:
            return web.json_response({"error": "channel is not running"}, status=503)
        signed = self._signer.file(request.match_info["signed"])
        if signed is None:
            return web.json_response(
                {"error": "this link is not valid or has expired; reopen the chat"}, status=403
            )
        visitor, url = signed
        missing = web.json_response({"error": "no such file"}, status=404)
        try:
            if not await self._backend.may_download(self.name, visitor, url):
                return missing
            blob = await self._blobs.get(url)
        except Exception as exc:
            self._last_error = f"file: {type(exc).__name__}: {exc}"
            logger.exception("webchat %s: serving a file failed", self.name)
            return web.json_response({"error": "file unavailable; try again"}, status=503)
        if blob is None:
            return missing
        return web.Response(
            body=blob.data, headers=download_headers(blob.filename, blob.content_type)
        )

    # The WebSocket ---------------------------------------------------------------------------

    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        if not self._origin_allowed(request):
            return web.json_response({"error": "origin not allowed"}, status=403)
        if self._emit is None or self._signer is None:
            return web.json_response({"error": "channel is not running"}, status=503)
        ip = request.remote or "?"
        if self._per_ip[ip] >= self.config.connections_per_ip:
            return web.json_response(
                {"error": "too many connections from this address"}, status=429
            )
        ws = web.WebSocketResponse(
            heartbeat=25.0, timeout=2.0, max_msg_size=self.config.max_frame_bytes * 4
        )
        await ws.prepare(request)
        conn = _Conn(ws, ip)
        self._per_ip[ip] += 1
        writer = asyncio.create_task(self._write(conn), name=f"webchat-{self.name}-write")
        try:
            async for msg in ws:
                if conn.frames.retry_after(""):
                    await ws.close(code=1008, message=b"too many frames")
                    break
                if msg.type == WSMsgType.TEXT:
                    await self._frame(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._bad(conn, protocol.BadFrame("bad_frame", "frames are JSON text"))
                if conn.bad_frames > MAX_BAD_FRAMES:
                    await ws.close(code=1008, message=b"too many malformed frames")
                    break
        finally:
            self._per_ip[ip] -= 1
            if not self._per_ip[ip]:
                del self._per_ip[ip]
            self._leave(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _write(self, conn: _Conn) -> None:
        while True:
            frame = await conn.outgoing.get()
            if frame is None:
                await conn.ws.close(code=4000, message=b"too slow; reconnect")
                return
            try:
                await conn.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return

    def _leave(self, conn: _Conn) -> None:
        conns = self._visitors.get(conn.visitor)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._visitors[conn.visitor]
                self._read.pop(conn.visitor, None)

    def _bad(self, conn: _Conn, exc: protocol.BadFrame) -> None:
        conn.bad_frames += 1
        conn.push(protocol.error_frame(exc.code, exc.message, exc.client_id))

    async def _frame(self, conn: _Conn, raw: str) -> None:
        if len(raw.encode()) > self.config.max_frame_bytes:
            self._bad(conn, protocol.BadFrame("too_large", "frame too large"))
            return
        try:
            frame = protocol.parse_frame(raw, max_chars=self.config.max_message_chars)
            if isinstance(frame, protocol.Hello):
                await self._hello(conn, frame)
            elif not conn.visitor:
                raise protocol.BadFrame("hello_first", "send hello first")
            elif isinstance(frame, protocol.Message):
                await self._message(conn, frame)
            elif isinstance(frame, protocol.Typing):
                await self._typing(conn)
            elif isinstance(frame, protocol.Contact):
                conn.name, conn.email = frame.name or conn.name, frame.email or conn.email
                conn.push({"type": "contact", "name": conn.name, "email": conn.email})
            else:
                conn.push({"type": "pong"})
        except protocol.BadFrame as exc:
            self._bad(conn, exc)

    async def _hello(self, conn: _Conn, hello: protocol.Hello) -> None:
        assert self._signer is not None
        if conn.visitor:
            raise protocol.BadFrame("bad_frame", "hello was already sent")
        if hello.token is not None:
            visitor = self._signer.visitor(hello.token)
            if visitor is None:
                raise protocol.BadFrame("bad_token", "visitor token is not valid; start afresh")
            token = hello.token
        else:
            visitor, token = self._signer.issue()
        # Registered before the history is read: a reply sent meanwhile is pushed (the widget
        # drops what it then sees twice), never lost between the read and the registration.
        conn.visitor, conn.name, conn.email, conn.page = (
            visitor,
            hello.name,
            hello.email,
            hello.page,
        )
        self._visitors.setdefault(visitor, set()).add(conn)
        lines: list[dict[str, Any]] = []
        status, read, available = "", "", True
        if self._backend is not None:
            try:
                history = await self._backend.history(
                    self.name, visitor, after=hello.last_id, limit=self.config.history_limit
                )
                available = await self._backend.available(self.name)
            except Exception as exc:
                self._last_error = f"history: {type(exc).__name__}: {exc}"
                logger.exception("webchat %s: reading the history failed", self.name)
                self._leave(conn)
                conn.visitor = ""
                raise protocol.BadFrame("unavailable", "history unavailable; try again") from None
            link = self._link(visitor)
            lines = [protocol.line_frame(line, link) for line in history.lines]
            status, read = history.status, history.read_external_id
            own = [line.external_id for line in history.lines if line.external_id]
            if own and own[-1] != read:
                self._await_read(visitor, own[-1])
        conn.available = available
        if read:
            self._read[visitor] = read
        conn.push(
            {
                "type": "welcome",
                "token": token,
                "visitor": visitor,
                "messages": lines,
                "status": status,
                "available": available,
                "read": protocol.client_part(read) if read else None,
            }
        )

    async def _message(self, conn: _Conn, message: protocol.Message) -> None:
        assert self._signer is not None
        external_id = f"{conn.visitor}/{message.client_id}"
        if external_id in self._queued:
            conn.push({"type": "ack", "client_id": message.client_id})
            return
        wait = await self._visitor_messages.retry_after(
            conn.visitor
        ) or await self._ip_messages.retry_after(conn.ip)
        if wait:
            raise protocol.BadFrame(
                "rate_limited", f"too many messages; retry in {wait:.0f} s", message.client_id
            )
        attachments = []
        for upload in message.uploads:
            if not self._signer.check_receipt(
                upload.receipt,
                conn.visitor,
                message.client_id,
                upload.url,
                upload.filename,
                upload.content_type,
            ):
                raise protocol.BadFrame(
                    "bad_attachment", "attachment was not uploaded here", message.client_id
                )
            attachments.append(
                Attachment(upload.filename, upload.content_type, upload.size, upload.url)
            )
        inbound = Inbound(
            channel=self.name,
            external_id=external_id,
            sender=Sender(external_id=conn.visitor, name=conn.name, email=conn.email),
            text=message.text,
            attachments=tuple(attachments),
            metadata={"page": conn.page} if conn.page else {},
        )
        emit = self._emit
        if emit is None:
            raise protocol.BadFrame("unavailable", "server is stopping; resend", message.client_id)
        try:
            await emit(inbound)
        except Exception as exc:
            self._last_error = f"queue: {type(exc).__name__}: {exc}"
            logger.exception("webchat %s: queueing a message failed", self.name)
            raise protocol.BadFrame(
                "unavailable", "message not stored; resend", message.client_id
            ) from None
        self._queued[external_id] = None
        if len(self._queued) > 10_000:
            self._queued.popitem(last=False)
        self._await_read(conn.visitor, external_id)
        at = inbound.received_at.isoformat()
        mirror = protocol.mirror_frame(message, at, self._link(conn.visitor))
        ack: dict[str, Any] = {"type": "ack", "client_id": message.client_id}
        if message.uploads:  # the sending tab links its files too
            ack["attachments"] = mirror["attachments"]
        conn.push(ack)
        # The visitor's other tabs show it too (its server id comes with the next history).
        for other in self._visitors.get(conn.visitor, ()):
            if other is not conn:
                other.push(mirror)

    def _await_read(self, visitor: str, external_id: str) -> None:
        self._unread[visitor] = external_id
        self._unread.move_to_end(visitor)
        if len(self._unread) > UNREAD_TRACKED:
            self._unread.popitem(last=False)

    async def _typing(self, conn: _Conn) -> None:
        if self._backend is None or self._typing_rate.retry_after(conn.visitor):
            return
        try:
            await self._backend.visitor_typing(self.name, conn.visitor)
        except Exception:
            logger.exception("webchat %s: passing on typing failed", self.name)
