"""Sending replies through the Bot API: long texts split at Telegram's limit, files, quick-reply
buttons, flood limits (per-chat and global pacing, waiting out `RetryAfter`), and Telegram's
errors turned into `DeliveryError`s that say whether retrying can help."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

# python-telegram-bot 22 warns whenever a duration (RetryAfter.retry_after included) is read as
# an int; opting in to the coming timedelta form now keeps those reads quiet.
os.environ.setdefault("PTB_TIMEDELTA", "true")

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram import Message as TelegramMessage
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)

from channels.base import BlobStore, CursorStore, Delivery, DeliveryError, Outbound
from channels.telegram_updates import QUICK_REPLY_PREFIX

logger = logging.getLogger(__name__)

TEXT_LIMIT = 4096
"""Telegram's limit for one message, counted in UTF-16 code units."""
PHOTO_LIMIT = 10 * 1024 * 1024
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
MAX_ATTEMPTS = 5


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most `limit` UTF-16 units, cut at a paragraph, line or word break when
    there is one in the second half of the piece."""
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        cut = _fit(rest, limit)
        window = rest[:cut]
        for separator in ("\n\n", "\n", " "):
            at = window.rfind(separator)
            if at > cut // 2:
                cut = at + len(separator)
                break
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n")
    if rest.strip() or not pieces:
        pieces.append(rest)
    return pieces


def _fit(text: str, limit: int) -> int:
    """How many characters of `text` fit in `limit` UTF-16 units."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)


def quick_reply_markup(choices: tuple[str, ...]) -> InlineKeyboardMarkup | None:
    """One button per row (Persian choices are long), each carrying `qr:<index>`."""
    if not choices:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(choice[:120], callback_data=f"{QUICK_REPLY_PREFIX}{index}")]
            for index, choice in enumerate(choices[:20])
        ]
    )


class Pacer:
    """Telegram's flood limits kept on our side: about one message a second to a chat and 30 a
    second overall. Each send reserves a slot (the chat's next free time, then the first free
    1/30 s tick from there), so concurrent sends queue up without a lock and a busy chat never
    holds up the others."""

    def __init__(
        self,
        *,
        per_chat_seconds: float = 1.0,
        per_second: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_chat = per_chat_seconds
        self._rate = per_second
        self._clock = clock
        self._chat_next: dict[str, float] = {}
        self._ticks: set[int] = set()
        self._held_until = 0.0

    async def wait(self, chat: str) -> None:
        now = self._clock()
        wanted = max(now, self._held_until, self._chat_next.get(chat, 0.0))
        tick = math.ceil(wanted * self._rate)
        while tick in self._ticks:
            tick += 1
        self._ticks.add(tick)
        slot = max(wanted, tick / self._rate)
        self._chat_next[chat] = slot + self._per_chat
        if len(self._ticks) > 1000 or len(self._chat_next) > 10_000:
            self._forget(now)
        if slot > now:
            await asyncio.sleep(slot - now)

    def _forget(self, now: float) -> None:
        past = math.floor(now * self._rate)
        self._ticks = {tick for tick in self._ticks if tick >= past}
        self._chat_next = {chat: t for chat, t in self._chat_next.items() if t > now}

    def hold(self, seconds: float) -> None:
        """Telegram said to wait: nothing leaves before then."""
        self._held_until = max(self._held_until, self._clock() + seconds)


def _seconds(retry_after: int | float | timedelta) -> float:
    if isinstance(retry_after, timedelta):
        return retry_after.total_seconds()
    return float(retry_after)


class TelegramSender:
    """Delivers one `Outbound` as one or more Bot API messages. When a reply takes several
    messages, how many went out is remembered in the cursor store, so a retry after a failure
    half-way does not send the first ones twice."""

    def __init__(
        self,
        bot: Bot,
        *,
        channel: str,
        pacer: Pacer,
        cursors: CursorStore,
        blobs: BlobStore | None,
        max_wait_seconds: float,
    ) -> None:
        self._bot = bot
        self._channel = channel
        self._pacer = pacer
        self._cursors = cursors
        self._blobs = blobs
        self._max_wait = max_wait_seconds

    async def send(self, message: Outbound) -> Delivery:
        chat = message.thread_id or message.recipient.external_id
        if not chat or not chat.lstrip("-").isdigit():
            raise DeliveryError("no Telegram chat to send to", permanent=True)
        steps = await self._steps(message, int(chat))
        progress_key = f"sent:{message.message_id}"
        done = 0
        if len(steps) > 1:
            done = int(await self._cursors.get(self._channel, progress_key) or 0)
        last: TelegramMessage | None = None
        for index, step in enumerate(steps):
            if index < done:
                continue
            last = await self._call(chat, step)
            if len(steps) > 1:
                await self._cursors.set(self._channel, progress_key, str(index + 1))
        return Delivery(external_id=f"{chat}:{last.message_id}" if last else "")

    async def _steps(
        self, message: Outbound, chat: int
    ) -> list[Callable[[], Awaitable[TelegramMessage]]]:
        """The Bot API calls that make up the reply: its text (split), then its files; the
        quick-reply buttons go under the last of them."""
        steps: list[Callable[[], Awaitable[TelegramMessage]]] = []
        markup = quick_reply_markup(message.quick_replies)
        texts = split_text(message.text) if message.text.strip() else []
        if not texts and not message.attachments:
            texts = ["…"] if markup else []
        if not texts and not message.attachments:
            raise DeliveryError("an empty reply", permanent=True)
        files: list[tuple[str, str, bytes]] = []
        for attachment in message.attachments:
            blob = await self._blobs.get(attachment.url) if self._blobs else None
            if blob is None:
                raise DeliveryError(f"attachment {attachment.filename!r} is gone", permanent=True)
            files.append((blob.filename, blob.content_type, blob.data))
        count = len(texts) + len(files)
        for index, text in enumerate(texts):
            keyboard = markup if index == count - 1 else None
            steps.append(_text_step(self._bot, chat, text, keyboard))
        for index, (filename, content_type, data) in enumerate(files, start=len(texts)):
            keyboard = markup if index == count - 1 else None
            steps.append(_file_step(self._bot, chat, filename, content_type, data, keyboard))
        return steps

    async def _call(
        self, chat: str, step: Callable[[], Awaitable[TelegramMessage]]
    ) -> TelegramMessage:
        for _ in range(MAX_ATTEMPTS):
            await self._pacer.wait(chat)
            try:
                return await step()
            except RetryAfter as exc:
                wait = _seconds(exc.retry_after)
                if wait > self._max_wait:
                    raise DeliveryError(f"Telegram flood control: retry in {wait:.0f} s") from exc
                logger.info("telegram %s: flood control, waiting %.1f s", self._channel, wait)
                self._pacer.hold(wait)
            except Forbidden as exc:
                raise DeliveryError(
                    f"Telegram refused: {exc.message} (the customer may have blocked the bot)",
                    permanent=True,
                ) from exc
            except InvalidToken as exc:
                raise DeliveryError(f"Telegram refused the bot token: {exc.message}") from exc
            except ChatMigrated as exc:
                raise DeliveryError(
                    f"the group moved to chat {exc.new_chat_id}", permanent=True
                ) from exc
            except BadRequest as exc:
                raise DeliveryError(f"Telegram refused: {exc.message}", permanent=True) from exc
            except TelegramError as exc:  # NetworkError, TimedOut, Conflict: try again later
                raise DeliveryError(f"Telegram unreachable: {exc.message}") from exc
        raise DeliveryError("Telegram flood control did not let up")


def _text_step(
    bot: Bot, chat: int, text: str, markup: InlineKeyboardMarkup | None
) -> Callable[[], Awaitable[TelegramMessage]]:
    async def step() -> TelegramMessage:
        # Plain text, no parse mode: whatever the agent typed arrives exactly as typed.
        return await bot.send_message(chat, text, reply_markup=markup)

    return step


def _file_step(
    bot: Bot,
    chat: int,
    filename: str,
    content_type: str,
    data: bytes,
    markup: InlineKeyboardMarkup | None,
) -> Callable[[], Awaitable[TelegramMessage]]:
    async def step() -> TelegramMessage:
        upload = InputFile(data, filename=filename, attach=False)
        kwargs: dict[str, Any] = {"reply_markup": markup}
        if content_type in PHOTO_TYPES and len(data) <= PHOTO_LIMIT:
            return await bot.send_photo(chat, upload, **kwargs)
        return await bot.send_document(chat, upload, **kwargs)

    return step
