"""The Telegram channel: one bot, receiving by long polling (the default) or by webhook, replying
through the Bot API. The base URL is configurable, so Telegram-compatible messengers (Bale, a
self-hosted Bot API server) work through the same adapter.

Nothing is lost or doubled: a polled update's offset is remembered only after its message is
queued (so a restart resumes there), a webhook answers 200 only once the message is queued
(otherwise Telegram delivers it again), and every message's external id is its chat and message
id, which the router stores once. Parsing is `channels.telegram_updates`'s; sending
`channels.telegram_send`'s."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import random
import re
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web
from pydantic import Field, SecretStr, model_validator
from telegram import Bot
from telegram.error import Conflict, InvalidToken, TelegramError
from telegram.request import HTTPXRequest

from channels.base import (
    Attachment,
    BlobStore,
    CursorStore,
    Delivery,
    DeliveryError,
    Emit,
    Inbound,
    Outbound,
    Rejected,
    Route,
)
from channels.config import ChannelConfig
from channels.request_body import read_body
from channels.telegram_send import Pacer, TelegramSender
from channels.telegram_updates import ALLOWED_UPDATES, BadUpdate, Draft, FileRef, parse_update

logger = logging.getLogger(__name__)

TELEGRAM_URL = "https://api.telegram.org/bot"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BACKOFF = 60.0
RECENT_UPDATES = 2048
_SECRET = re.compile(r"[A-Za-z0-9_-]+")


class TelegramConfig(ChannelConfig):
    type: Literal["telegram"] = "telegram"
    token: SecretStr
    """The bot's token from @BotFather; write it as `${ENV_NAME}` in config.yaml."""
    mode: Literal["polling", "webhook"] = "polling"
    """`polling` needs no public URL; `webhook` has Telegram post to this server."""
    base_url: str = TELEGRAM_URL
    """The Bot API; Bale's is `https://tapi.bale.ai/bot`."""
    base_file_url: str | None = None
    """Where files are downloaded; by default `base_url` with `/bot` turned into `/file/bot`."""
    webhook_url: str | None = None
    """The full URL Telegram posts to; by default `server.public_url` +
    `/channels/telegram/<name>/webhook`."""
    webhook_secret: SecretStr | None = None
    """Required in webhook mode: 1–256 of `A-Z a-z 0-9 _ -`; Telegram sends it with every post."""
    allow_groups: bool = False
    """Take messages from group chats the bot is in (the group is the conversation)."""
    max_attachment_bytes: int = Field(default=20 * 1024 * 1024, ge=0)
    """Files up to this size are stored; larger ones are listed with a note (the Bot API
    itself serves at most 20 MB)."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    poll_timeout_seconds: int = Field(default=25, ge=0, le=50)
    per_chat_interval_seconds: float = Field(default=1.0, ge=0)
    """Pacing of replies to one chat (Telegram allows about one a second)."""
    messages_per_second: float = Field(default=30.0, gt=0)
    """Pacing of all the bot's replies (Telegram allows about 30 a second)."""
    max_flood_wait_seconds: float = Field(default=60.0, ge=0)
    """A flood-control wait longer than this fails the attempt (retried later) instead."""
    default_country: str = Field(default="98", pattern=r"^[1-9][0-9]{0,2}$")
    """For shared phone numbers written without a country code."""
    timeout_seconds: float = Field(default=20.0, gt=0)

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> TelegramConfig:
        if self.mode == "webhook":
            secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
            if not secret:
                raise ValueError("webhook_secret: required when mode is webhook")
            if len(secret) > 256 or not all(
                c.isascii() and (c.isalnum() or c in "_-") for c in secret
            ):
                raise ValueError("webhook_secret: 1 to 256 of A-Z, a-z, 0-9, _ and -")
        return self

    def file_url(self) -> str:
        if self.base_file_url:
            return self.base_file_url
        head, sep, tail = self.base_url.rpartition("/bot")
        return f"{head}/file/bot{tail}" if sep else self.base_url


class TelegramChannel:
    """One bot. `start()` launches the receiving task (polling, or registering the webhook) and
    returns at once: a Bot API that is down shows in `status()` and is retried with backoff."""

    type = "telegram"

    def __init__(self, config: TelegramConfig) -> None:
        self.name = config.name
        self.config = config
        self._emit: Emit | None = None
        self._cursors: CursorStore | None = None
        self._blobs: BlobStore | None = None
        self._public_url = ""
        self._bot: Bot | None = None
        self._poll_request: HTTPXRequest | None = None
        self._sender: TelegramSender | None = None
        self._pacer = Pacer(
            per_chat_seconds=config.per_chat_interval_seconds,
            per_second=config.messages_per_second,
        )
        self._task: asyncio.Task[None] | None = None
        self._deferred = False
        self._recent: deque[int] = deque(maxlen=RECENT_UPDATES)
        self._status: dict[str, Any] = {
            "mode": config.mode,
            "connected": False,
            "bot_username": "",
            "webhook_url": "",
            "last_error": "",
            "last_error_at": None,
            "last_update_at": None,
            "received": 0,
        }

    # lifecycle ---------------------------------------------------------------------------

    def use_blobs(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    def use_public_url(self, url: str) -> None:
        """The address this server is reached at, for the default webhook URL."""
        self._public_url = url.rstrip("/")

    @property
    def webhook_url(self) -> str:
        return self.config.webhook_url or (
            f"{self._public_url}/channels/telegram/{self.name}/webhook"
        )

    async def start(self, emit: Emit, cursors: CursorStore) -> None:
        if self._bot is not None:
            return
        self._emit, self._cursors = emit, cursors
        config = self.config
        timeout = config.timeout_seconds
        self._poll_request = HTTPXRequest(
            read_timeout=config.poll_timeout_seconds + timeout, write_timeout=timeout
        )
        self._bot = Bot(
            config.token.get_secret_value(),
            base_url=config.base_url,
            base_file_url=config.file_url(),
            request=HTTPXRequest(
                connection_pool_size=64, read_timeout=timeout, write_timeout=timeout
            ),
            get_updates_request=self._poll_request,
        )
        self._sender = TelegramSender(
            self._bot,
            channel=self.name,
            pacer=self._pacer,
            cursors=cursors,
            blobs=self._blobs,
            max_wait_seconds=config.max_flood_wait_seconds,
        )
        if config.mode == "webhook":
            self._task = asyncio.create_task(self._register_webhook(), name=f"telegram-{self.name}")
        elif not self._deferred:
            await self.start_polling()

    @property
    def polls(self) -> bool:
        return self.config.mode == "polling"

    def defer_polling(self) -> None:
        self._deferred = True

    async def start_polling(self) -> None:
        if self._task is None and self._bot is not None and self.polls:
            self._task = asyncio.create_task(self._poll_forever(), name=f"telegram-{self.name}")

    async def stop_polling(self) -> None:
        """Stop asking for updates; what a poll already returned is queued before its offset
        is saved, so the next poller (here or elsewhere) starts where this one stopped."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._status["connected"] = False

    async def stop(self) -> None:
        await self.stop_polling()
        bot, self._bot = self._bot, None
        if bot is not None:
            with contextlib.suppress(Exception):
                await bot.shutdown()
        self._emit = self._sender = None
        self._status["connected"] = False

    def status(self) -> Mapping[str, Any]:
        return {"running": self._task is not None, **self._status}

    def _failed(self, exc: BaseException) -> None:
        self._status["last_error"] = self._scrub(f"{type(exc).__name__}: {exc}")
        self._status["last_error_at"] = datetime.now(UTC).isoformat()
        self._status["connected"] = False

    def _scrub(self, text: str) -> str:
        """The token is in every Bot API URL; it must not reach logs or the status page."""
        return text.replace(self.config.token.get_secret_value(), "<token>")

    async def _connect(self) -> Bot:
        """The bot, initialized (getMe answered): who it is shows in `status()`."""
        assert self._bot is not None
        await self._bot.initialize()
        self._status["bot_username"] = self._bot.username
        return self._bot

    # receiving ---------------------------------------------------------------------------

    async def _with_backoff(self, what: str, attempt: Any) -> None:
        """Run `attempt()` until it returns, waiting longer after each failure."""
        backoff = 1.0
        while True:
            try:
                await attempt()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc)
                wait = MAX_BACKOFF if isinstance(exc, InvalidToken) else backoff
                logger.warning(
                    "telegram %s: %s failed (%s); again in %.0f s",
                    self.name,
                    what,
                    self._scrub(str(exc)),
                    wait,
                )
                await asyncio.sleep(wait * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _register_webhook(self) -> None:
        async def register() -> None:
            bot = await self._connect()
            await bot.set_webhook(
                url=self.webhook_url,
                secret_token=self.config.webhook_secret.get_secret_value()  # type: ignore[union-attr]
                if self.config.webhook_secret
                else None,
                allowed_updates=list(ALLOWED_UPDATES),
            )
            self._status.update(connected=True, webhook_url=self.webhook_url, last_error="")

        await self._with_backoff("registering the webhook", register)

    async def _poll_forever(self) -> None:
        assert self._cursors is not None
        offset = int(await self._cursors.get(self.name, "offset") or 0)

        async def prepare() -> None:
            bot = await self._connect()
            await bot.delete_webhook(drop_pending_updates=False)  # getUpdates refuses otherwise

        await self._with_backoff("connecting", prepare)
        backoff = 1.0
        while True:
            try:
                offset = await self._poll_once(offset)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc)
                reason = "polled elsewhere too" if isinstance(exc, Conflict) else "polling failed"
                logger.warning("telegram %s: %s: %s", self.name, reason, self._scrub(str(exc)))
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _poll_once(self, offset: int) -> int:
        """One getUpdates round; each update is queued, then the next offset remembered."""
        assert self._bot is not None and self._cursors is not None
        timeout = self.config.poll_timeout_seconds
        # The raw JSON rather than `Bot.get_updates`: one malformed update (Telegram-compatible
        # servers differ) must be skipped on its own, not fail the whole batch forever.
        query = urlencode(
            {"offset": offset, "timeout": timeout, "allowed_updates": json.dumps(ALLOWED_UPDATES)}
        )
        assert self._poll_request is not None
        updates = await self._poll_request.post(
            f"{self._bot.base_url}/getUpdates?{query}",
            read_timeout=timeout + self.config.timeout_seconds,
        )
        self._status.update(connected=True, last_error="")
        for raw in updates if isinstance(updates, list) else []:
            update_id = raw.get("update_id") if isinstance(raw, dict) else None
            if not isinstance(update_id, int) or update_id < offset:
                continue
            try:
                await self.accept(raw)
            except BadUpdate as exc:
                logger.warning("telegram %s: skipped update %s: %s", self.name, update_id, exc)
            offset = update_id + 1
            await self._cursors.set(self.name, "offset", str(offset))
        return offset

    async def accept(self, raw: Mapping[str, Any]) -> bool:
        """Queue the message in one update (False if it held none for us or was seen just now).
        Raises `BadUpdate` for JSON that is no update, and whatever `emit` raises."""
        assert self._emit is not None
        update_id = raw.get("update_id")
        draft = parse_update(
            raw,
            allow_groups=self.config.allow_groups,
            default_country=self.config.default_country,
        )
        if draft is None or update_id in self._recent:
            return False
        inbound = await self._inbound(draft)
        await self._emit(inbound)
        assert isinstance(update_id, int)
        self._recent.append(update_id)
        self._status["received"] += 1
        self._status["last_update_at"] = datetime.now(UTC).isoformat()
        if draft.callback_query_id and self._bot is not None:
            try:  # stops the spinner on the button; the answer itself is already queued
                await self._bot.answer_callback_query(draft.callback_query_id)
            except TelegramError as exc:
                logger.info("telegram %s: answerCallbackQuery failed: %s", self.name, exc)
        return True

    async def _inbound(self, draft: Draft) -> Inbound:
        attachments: list[Attachment] = []
        notes: list[str] = []
        for ref in draft.files:
            attachment, note = await self._download(ref, draft.external_id)
            attachments.append(attachment)
            if note:
                notes.append(f"{ref.filename}: {note}")
        metadata = dict(draft.metadata)
        text = draft.text
        if notes:
            metadata["attachment_notes"] = "\n".join(notes)
            text = "\n".join([text, *(f"[{note}]" for note in notes)]).strip()
        return Inbound(
            channel=self.name,
            external_id=draft.external_id,
            sender=draft.sender,
            text=text,
            thread_id=draft.thread_id,
            attachments=tuple(attachments),
            metadata=metadata,
            received_at=draft.received_at,
        )

    async def _download(self, ref: FileRef, external_id: str) -> tuple[Attachment, str]:
        """The file stored as an attachment, or listed with a note saying why it is not: the
        message is never dropped for its file."""
        limit = self.config.max_attachment_bytes
        listed = Attachment(ref.filename, ref.content_type, ref.size or 0)
        if ref.size is not None and ref.size > limit:
            return listed, _too_big(ref.size, limit)
        if self._bot is None or self._blobs is None:
            return listed, "not stored (no file store)"
        try:
            file = await self._bot.get_file(ref.file_id)
            if file.file_size is not None and file.file_size > limit:
                return listed, _too_big(file.file_size, limit)
            data = bytes(await file.download_as_bytearray())
        except (TelegramError, OSError) as exc:
            reason = self._scrub(str(exc))
            logger.warning("telegram %s: could not download %s: %s", self.name, ref.file_id, reason)
            return listed, f"could not be downloaded ({reason})"
        if len(data) > limit:
            return listed, _too_big(len(data), limit)
        url = await self._blobs.put(
            data, ref.filename, ref.content_type, owner=f"{self.name}/{external_id}"
        )
        return Attachment(ref.filename, ref.content_type, len(data), url), ""

    # the webhook -------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        if self.config.mode != "webhook":
            return []
        return [Route("POST", "/webhook", self.handle_webhook)]

    async def handle_webhook(self, request: web.Request) -> web.StreamResponse:
        try:
            await self._webhook(request)
        except Rejected as exc:
            return web.json_response({"ok": False, "error": exc.reason}, status=exc.status)
        return web.json_response({"ok": True})

    async def _webhook(self, request: web.Request) -> None:
        secret = self.config.webhook_secret
        given = request.headers.get(SECRET_HEADER, "")
        if secret is None or not hmac.compare_digest(
            given.encode(), secret.get_secret_value().encode()
        ):
            raise Rejected(401, f"{SECRET_HEADER}: missing or wrong")
        if self._emit is None:
            raise Rejected(503, "channel is not running")
        body = await read_body(request, self.config.max_body_bytes)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise Rejected(400, "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Rejected(400, "body must be a JSON object")
        try:
            await self.accept(data)
        except BadUpdate as exc:
            raise Rejected(400, str(exc)) from None
        except Exception as exc:
            # Not queued: a 5xx makes Telegram deliver the update again later.
            logger.exception("telegram %s: could not queue an update", self.name)
            raise Rejected(503, f"not queued: {type(exc).__name__}") from None

    # sending -----------------------------------------------------------------------------

    async def send(self, message: Outbound) -> Delivery:
        """Deliver a reply to the customer's chat. Raises `DeliveryError`: permanent when the
        customer blocked the bot or Telegram refuses the message, transient otherwise."""
        if self._sender is None:
            raise DeliveryError("channel is not running")
        try:
            return await self._sender.send(message)
        except DeliveryError as exc:
            reason = self._scrub(exc.reason)
            self._status["last_error"] = reason
            self._status["last_error_at"] = datetime.now(UTC).isoformat()
            if reason != exc.reason:
                raise DeliveryError(reason, permanent=exc.permanent) from exc.__cause__
            raise


def _too_big(size: int, limit: int) -> str:
    return f"not stored: {size / 1048576:.1f} MB is over the {limit / 1048576:.1f} MB limit"
