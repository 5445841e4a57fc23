"""The web form channel: a contact form on the customer's site posts here (HTML form or JSON)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web
from pydantic import Field

from channels.base import (
    CursorStore,
    Delivery,
    DeliveryError,
    Emit,
    Inbound,
    Outbound,
    Rejected,
    Route,
    Sender,
    emit_or_refuse,
)
from channels.config import ChannelConfig
from channels.contacts import normalize_email, normalize_phone
from channels.request_body import read_body

FIELDS = ("name", "email", "phone", "subject", "message")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class WebformConfig(ChannelConfig):
    type: Literal["webform"] = "webform"
    honeypot: str = "website"
    """A field hidden from people; a submission that fills it is dropped as spam."""
    max_body_bytes: int = Field(default=192 * 1024, ge=1024)
    """Room for a full-length Persian message sent as a form (about 6 bytes a letter)."""
    max_message_chars: int = Field(default=20_000, ge=1)
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed to post with JavaScript (CORS); `*` allows any."""
    success_url: str | None = None
    """Where a browser's plain HTML form post is redirected after it is queued."""
    default_country: str = Field(default="98", pattern=r"^[1-9][0-9]{0,2}$")
    reply_channel: str | None = None
    """The email channel that sends replies to this form's conversations, to the address the
    customer gave; without it replies cannot be delivered."""


@dataclass(frozen=True, slots=True)
class Submission:
    name: str
    email: str
    phone: str
    subject: str
    message: str
    extra: Mapping[str, str]


def _clean(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise Rejected(422, f"{field}: must be text")
    cleaned = _CONTROL.sub("", value).strip()
    if len(cleaned) > limit:
        raise Rejected(422, f"{field}: longer than {limit} characters")
    return cleaned


def parse_submission(fields: Mapping[str, Any], config: WebformConfig) -> Submission:
    """Validate a submission's fields; raises `Rejected` naming the first bad field."""
    message = _clean(fields.get("message", ""), "message", config.max_message_chars)
    if not message:
        raise Rejected(422, "message: required")
    raw_email = _clean(fields.get("email", ""), "email", 320)
    raw_phone = _clean(fields.get("phone", ""), "phone", 40)
    email = normalize_email(raw_email) if raw_email else ""
    if email is None:
        raise Rejected(422, "email: not an email address")
    phone = normalize_phone(raw_phone, default_country=config.default_country) if raw_phone else ""
    if phone is None:
        raise Rejected(422, "phone: not a phone number")
    if not email and not phone:
        raise Rejected(422, "email or phone: one is required so that we can answer")
    extra = {
        key: _clean(value, key, 1000)
        for key, value in list(fields.items())[:50]
        if key not in FIELDS and key != config.honeypot and isinstance(value, str)
    }
    return Submission(
        name=_clean(fields.get("name", ""), "name", 200),
        email=email,
        phone=phone,
        subject=_clean(fields.get("subject", ""), "subject", 500),
        message=message,
        extra=extra,
    )


def decode_fields(body: bytes, content_type: str, charset: str | None) -> dict[str, Any]:
    """The submitted fields of a form-encoded or JSON body; raises `Rejected` if unreadable."""
    if content_type not in ("application/json", "application/x-www-form-urlencoded"):
        raise Rejected(415, "send application/x-www-form-urlencoded or application/json")
    try:
        text = body.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise Rejected(400, f"body is not valid {charset or 'utf-8'} text") from None
    if content_type == "application/json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise Rejected(400, "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Rejected(400, "body must be a JSON object")
        # A `\ud800` escape decodes to a lone surrogate, which no UTF-8 store can hold.
        if any(isinstance(s, str) and _SURROGATE.search(s) for pair in data.items() for s in pair):
            raise Rejected(400, "body has a \\u escape that is not a character")
        return data
    # %XX escapes are bytes in the declared charset; undecodable ones are refused rather than
    # silently replaced with U+FFFD.
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            max_num_fields=100,
            encoding=charset or "utf-8",
            errors="strict",
        )
    except UnicodeDecodeError:
        raise Rejected(400, f"body has %XX escapes that are not {charset or 'utf-8'}") from None
    except ValueError:
        raise Rejected(400, "body is not a valid form encoding") from None
    return dict(pairs)


@dataclass
class _Turn:
    """Posts of one idempotency key take turns; `users` counts the holder and its waiters."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class WebformChannel:
    """Accepts submissions; replies go out by email, so this channel cannot send by itself."""

    type = "webform"

    def __init__(self, config: WebformConfig) -> None:
        self.name = config.name
        self.config = config
        self.reply_channel = config.reply_channel
        self._emit: Emit | None = None
        self._cursors: CursorStore | None = None
        self._id_prefix = uuid.uuid4().hex
        self._counter = itertools.count(1)
        self._turns: dict[str, _Turn] = {}

    async def start(self, emit: Emit, cursors: CursorStore) -> None:
        self._emit = emit
        self._cursors = cursors

    async def stop(self) -> None:
        self._emit = None

    async def send(self, message: Outbound) -> Delivery:
        raise DeliveryError(
            "web form replies are sent by email, and no email channel is configured",
            permanent=True,
        )

    def _new_id(self) -> str:
        """Unique without a random draw per request (os.urandom is slow on some VMs): a random
        prefix chosen when the channel starts, and a counter."""
        return f"{self._id_prefix}-{next(self._counter)}"

    @contextlib.asynccontextmanager
    async def _turn(self, key: str) -> AsyncIterator[None]:
        """Hold the key while checking, queueing and remembering a post, so that a concurrent
        post of the same key sees the first one's outcome instead of racing it. In-process only;
        across web nodes the deterministic external id still makes the router store it once."""
        turn = self._turns.setdefault(key, _Turn())
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[key]

    def status(self) -> Mapping[str, Any]:
        return {"running": self._emit is not None}

    def routes(self) -> Sequence[Route]:
        return [Route("POST", "", self.handle_post), Route("OPTIONS", "", self.handle_preflight)]

    def _cors(self, request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin")
        allowed = self.config.allowed_origins
        if origin and ("*" in allowed or origin in allowed):
            return {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Idempotency-Key",
                "Vary": "Origin",
            }
        return {}

    async def handle_preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=self._cors(request))

    async def handle_post(self, request: web.Request) -> web.StreamResponse:
        headers = self._cors(request)
        try:
            return await self._accept(request, headers)
        except Rejected as exc:
            return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)

    async def _accept(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        if self._emit is None or self._cursors is None:
            raise Rejected(503, "channel is not running")
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.match(key):
            raise Rejected(400, "Idempotency-Key: 1 to 200 printable ASCII characters")
        body = await read_body(request, self.config.max_body_bytes)
        fields = decode_fields(body, request.content_type, request.charset)
        if str(fields.get(self.config.honeypot, "")).strip():
            return web.json_response(
                {"id": self._new_id(), "status": "queued"}, status=202, headers=headers
            )
        submission = parse_submission(fields, self.config)
        if key:
            # The external id is the key itself, so even posts that race past the turn (on
            # another web node) are stored once by the router's unique (channel, external_id).
            external_id = f"idem:{key}"
            async with self._turn(external_id):
                if not await self._queue_once(submission, external_id, body):
                    return web.json_response(
                        {"id": external_id, "status": "duplicate"}, status=200, headers=headers
                    )
        else:
            external_id = self._new_id()
            await emit_or_refuse(self._emit, self._inbound(submission, external_id))
        if self.config.success_url and request.content_type != "application/json":
            raise web.HTTPSeeOther(self.config.success_url, headers=headers)
        return web.json_response(
            {"id": external_id, "status": "queued"}, status=202, headers=headers
        )

    async def _queue_once(self, submission: Submission, external_id: str, body: bytes) -> bool:
        """Queue a keyed post unless its key was seen; False for a repeat of the same body,
        `Rejected` for the key reused with another body. Call it holding the key's turn."""
        assert self._emit is not None and self._cursors is not None
        digest = hashlib.sha256(body).hexdigest()
        seen = await self._cursors.get(self.name, external_id)
        if seen is not None:
            if seen != digest:
                raise Rejected(422, "Idempotency-Key was already used with a different body")
            return False
        await emit_or_refuse(self._emit, self._inbound(submission, external_id))
        await self._cursors.set(self.name, external_id, digest)
        return True

    def _inbound(self, submission: Submission, external_id: str) -> Inbound:
        return Inbound(
            channel=self.name,
            external_id=external_id,
            sender=Sender(
                external_id=submission.email or submission.phone,
                name=submission.name,
                email=submission.email,
                phone=submission.phone,
            ),
            text=submission.message,
            subject=submission.subject,
            metadata=dict(submission.extra),
        )
