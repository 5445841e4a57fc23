"""The generic API channel: other systems post signed JSON messages and receive signed replies.

Requests and callbacks carry `X-Pishkhan-Signature: sha256=<hex>`, an HMAC-SHA256 of the raw body
keyed by the channel's shared secret (the scheme Meta and GitHub use for webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from channels.base import (
    Attachment,
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
from channels.request_body import read_body

SIGNATURE_HEADER = "X-Pishkhan-Signature"


class ApiConfig(ChannelConfig):
    type: Literal["api"] = "api"
    secret: SecretStr = Field(min_length=16)
    """Shared HMAC key; write it as `${ENV_NAME}` in config.yaml."""
    callback_url: str | None = None
    """Where replies are POSTed (signed); without it replies show as not deliverable."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    timeout_seconds: float = Field(default=10.0, gt=0)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """PostgreSQL cannot store NUL in text: refuse it here rather than fail after a 202."""
        texts = [*value.keys(), *value.values()] if isinstance(value, dict) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError("must not contain NUL (\\u0000) characters")
        return value


class ApiSender(_Strict):
    id: str = Field(min_length=1, max_length=320)
    name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=320)
    phone: str = Field(default="", max_length=40)


class ApiAttachment(_Strict):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    url: str = Field(min_length=1, max_length=2000)
    size: int = Field(default=0, ge=0)


class ApiMessage(_Strict):
    id: str = Field(min_length=1, max_length=200)
    sender: ApiSender
    text: str = Field(default="", max_length=100_000)
    subject: str = Field(default="", max_length=500)
    thread_id: str | None = Field(default=None, max_length=320)
    attachments: tuple[ApiAttachment, ...] = Field(default=(), max_length=20)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)


class ApiBatch(_Strict):
    messages: tuple[ApiMessage, ...] = Field(min_length=1, max_length=100)


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Constant-time check of a `sha256=<hex>` signature over the raw body."""
    if not header or not header.isascii():  # a non-ASCII header can only be wrong
        return False
    return hmac.compare_digest(sign(body, secret), header.strip())


def parse_messages(body: bytes) -> tuple[ApiMessage, ...]:
    """One message object or `{"messages": [...]}`; raises `Rejected` with what is wrong."""
    try:
        # UTF-8 (RFC 8259), not sniffed as UTF-16/32 the way `json.loads(bytes)` does.
        data = json.loads(body.decode("utf-8-sig"))
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        raise Rejected(400, "body is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise Rejected(400, "body must be a JSON object")
    try:
        if "messages" in data:
            return ApiBatch.model_validate(data).messages
        return (ApiMessage.model_validate(data),)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise Rejected(422, f"{where}: {first['msg']}") from None


def to_inbound(channel: str, message: ApiMessage) -> Inbound:
    if not message.text and not message.attachments:
        raise Rejected(422, f"{message.id}: text or attachments required")
    return Inbound(
        channel=channel,
        external_id=message.id,
        sender=Sender(
            external_id=message.sender.id,
            name=message.sender.name,
            email=message.sender.email,
            phone=message.sender.phone,
        ),
        text=message.text,
        subject=message.subject,
        thread_id=message.thread_id,
        attachments=tuple(
            Attachment(filename=a.filename, content_type=a.content_type, size=a.size, url=a.url)
            for a in message.attachments
        ),
        metadata=message.metadata,
    )


class ApiChannel:
    type = "api"

    def __init__(self, config: ApiConfig) -> None:
        self.name = config.name
        self.config = config
        self._emit: Emit | None = None
        self._http: aiohttp.ClientSession | None = None
        self._last_error = ""

    async def start(self, emit: Emit, cursors: CursorStore) -> None:
        self._emit = emit
        if self._http is None:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
            self._http = aiohttp.ClientSession(timeout=timeout)

    async def stop(self) -> None:
        self._emit = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    def status(self) -> Mapping[str, Any]:
        return {"running": self._emit is not None, "last_error": self._last_error}

    def routes(self) -> Sequence[Route]:
        return [Route("POST", "/messages", self.handle_post)]

    async def handle_post(self, request: web.Request) -> web.Response:
        try:
            accepted = await self._accept(request)
        except Rejected as exc:
            return web.json_response({"error": exc.reason}, status=exc.status)
        return web.json_response({"accepted": accepted}, status=202)

    async def _accept(self, request: web.Request) -> list[str]:
        if self._emit is None:
            raise Rejected(503, "channel is not running")
        body = await read_body(request, self.config.max_body_bytes)
        secret = self.config.secret.get_secret_value()
        if not verify_signature(body, request.headers.get(SIGNATURE_HEADER), secret):
            raise Rejected(401, f"missing or wrong {SIGNATURE_HEADER}")
        charset = (request.charset or "utf-8").lower()
        if request.content_type != "application/json" or charset not in ("utf-8", "utf8"):
            raise Rejected(415, "send application/json in UTF-8")
        envelopes = [to_inbound(self.name, message) for message in parse_messages(body)]
        for envelope in envelopes:
            await emit_or_refuse(self._emit, envelope)
        return [envelope.external_id for envelope in envelopes]

    async def send(self, message: Outbound) -> Delivery:
        if not self.config.callback_url:
            raise DeliveryError(
                "this API channel has no callback_url to deliver to", permanent=True
            )
        if self._http is None:
            raise DeliveryError("channel is not running")
        body = json.dumps(
            {
                "message_id": message.message_id,
                "recipient": {"id": message.recipient.external_id, "name": message.recipient.name},
                "thread_id": message.thread_id,
                "in_reply_to": message.in_reply_to,
                "subject": message.subject,
                "text": message.text,
                "author": message.author_name,
            },
            ensure_ascii=False,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self.config.secret.get_secret_value()),
        }
        try:
            async with self._http.post(
                self.config.callback_url, data=body, headers=headers
            ) as response:
                text = (await response.text())[:500]
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._last_error = f"callback unreachable: {exc!r}"
            raise DeliveryError(self._last_error) from exc
        if response.status >= 300:
            self._last_error = f"callback answered {response.status}: {text}"
            permanent = 400 <= response.status < 500 and response.status not in (408, 429)
            raise DeliveryError(self._last_error, permanent=permanent)
        self._last_error = ""
        return Delivery(external_id=str(message.message_id))
