"""The email channel: a mailbox read over IMAP (IDLE, or polling) and replies sent over SMTP.

Intake never misses nor duplicates: new UIDs are fetched without marking them seen, queued,
remembered (per mailbox, with its UIDVALIDITY), and only then flagged \\Seen; after a crash the
next start fetches from the remembered UID again and the router's unique (channel, external id)
drops what it already stored. The external id is the Message-ID, or a hash of the raw mail for
mail that has none. Parsing is `channels.email_parse`'s; composing `channels.email_compose`'s."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import re
import secrets
import ssl
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any, Literal

import aioimaplib
import aiosmtplib
from pydantic import Field, FilePath, SecretStr, field_validator

from channels.base import (
    Attachment,
    BlobStore,
    CursorStore,
    Delivery,
    DeliveryError,
    Emit,
    Inbound,
    Outbound,
    Route,
    Sender,
)
from channels.config import ChannelConfig
from channels.contacts import normalize_email
from channels.email_compose import (
    bare_id,
    compose_reply,
    make_token,
    message_ids,
    read_token,
    tokens_in_recipients,
)
from channels.email_parse import ParsedMail, parse_mail

logger = logging.getLogger(__name__)

Security = Literal["ssl", "starttls", "none"]
FETCH_BATCH = 50
IDLE_SECONDS = 25 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes
MAX_BACKOFF = 60.0
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_UID = re.compile(rb"UID (\d+)")
_UIDNEXT = re.compile(rb"UIDNEXT (\d+)")


class EmailConfig(ChannelConfig):
    type: Literal["email"] = "email"
    address: str = Field(pattern=r"^[^@\s+]+@[^@\s]+\.[^@\s]+$")
    """The support address replies come from (and, with a `+token`, go back to)."""
    display_name: str = "Support"
    imap_host: str
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_security: Security = "ssl"
    imap_username: str
    imap_password: SecretStr
    """Write it as `${ENV_NAME}` in config.yaml."""
    mailbox: str = "INBOX"
    smtp_host: str
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Security = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    """Attachments up to this size are stored; larger ones are listed with a note."""
    poll_seconds: float = Field(default=60.0, gt=0)
    """How often to look for new mail when the server has no IDLE."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    tls_ca_file: FilePath | None = None
    """A PEM file of the certificate authorities to trust for IMAP and SMTP over TLS (a
    company's private CA); by default the system's store. Certificates are always verified."""

    @field_validator("address")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("tls_ca_file")
    @classmethod
    def _loads(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                ssl.create_default_context(cafile=str(value))
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise ValueError(f"{value} holds no PEM certificate we can read: {exc}") from None
        return value

    def tls_context(self) -> ssl.SSLContext:
        """What TLS connections verify the server against (hostname included)."""
        if self.tls_ca_file is None:
            return ssl.create_default_context()
        return ssl.create_default_context(cafile=str(self.tls_ca_file))


def fallback_id(raw: bytes) -> str:
    """A stable external id for mail without a Message-ID: the same bytes, the same id."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def thread_root(message_id: str, in_reply_to: str, references: Sequence[str]) -> str:
    """The id of the mail that started the thread: first of References, else In-Reply-To,
    else the mail's own."""
    return references[0] if references else in_reply_to or message_id


class _Lost(Exception):
    """The IMAP connection dropped."""


class EmailChannel:
    """One mailbox. `start()` launches the IMAP reader task; `send()` opens one SMTP
    connection per reply (replies are rare next to intake; a pooled connection would have to
    survive servers that close idle sessions after a minute)."""

    type = "email"

    def __init__(self, config: EmailConfig) -> None:
        self.name = config.name
        self.config = config
        self._emit: Emit | None = None
        self._cursors: CursorStore | None = None
        self._blobs: BlobStore | None = None
        self._key = b""
        self._tls = config.tls_context()
        self._reader: asyncio.Task[None] | None = None
        self._started = False
        self._deferred = False
        self._client: aioimaplib.IMAP4 | None = None
        self._session_ok = False
        self._status: dict[str, Any] = {
            "connected": False,
            "idle": False,
            "last_error": "",
            "last_error_at": None,
            "last_message_at": None,
            "received": 0,
            "dropped_auto_replies": 0,
        }

    # lifecycle ---------------------------------------------------------------------------

    def use_blobs(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    async def start(self, emit: Emit, cursors: CursorStore) -> None:
        """Begin reading the mailbox in a background task (unless `defer_polling()` was
        called). Does not wait for a connection: a server that is down shows in `status()`
        and is retried with backoff."""
        if self._started:
            return
        self._emit, self._cursors = emit, cursors
        self._key = await self._token_key(cursors)
        self._started = True
        if not self._deferred:
            await self.start_polling()

    @property
    def polls(self) -> bool:
        return True

    def defer_polling(self) -> None:
        self._deferred = True

    async def start_polling(self) -> None:
        if self._reader is None and self._started:
            self._reader = asyncio.create_task(self._read_forever(), name=f"email-{self.name}")

    async def stop_polling(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            # Python 3.11's wait_for can swallow a cancellation that lands as the awaited
            # connection fails (gh-86296): cancel again until the reader has really ended.
            while not reader.done():
                reader.cancel()
                await asyncio.wait({reader}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                reader.result()
        await self._close_client()
        self._status["connected"] = self._status["idle"] = False

    async def stop(self) -> None:
        await self.stop_polling()
        self._emit = None
        self._started = False

    def routes(self) -> Sequence[Route]:
        return []

    def status(self) -> Mapping[str, Any]:
        return {"running": self._reader is not None, **self._status}

    async def _token_key(self, cursors: CursorStore) -> bytes:
        """The channel's HMAC key for reply tokens, made once and kept in the cursor store
        (so that tokens stay valid across restarts and processes)."""
        stored = await cursors.get(self.name, "token_key")
        if stored is None:
            await cursors.set(self.name, "token_key", secrets.token_hex(32))
            stored = await cursors.get(self.name, "token_key")
        assert stored is not None
        return bytes.fromhex(stored)

    # intake ------------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        backoff = 1.0
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc)
                logger.warning(
                    "email %s: IMAP %s; reconnecting in %.0f s",
                    self.name,
                    exc or repr(exc),
                    backoff,
                )
            finally:
                self._status["connected"] = self._status["idle"] = False
                await self._close_client()
            if self._session_ok:  # it worked for a while: a fresh drop, start the backoff over
                backoff, self._session_ok = 1.0, False
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _failed(self, exc: BaseException) -> None:
        self._status["last_error"] = f"{type(exc).__name__}: {exc}"
        self._status["last_error_at"] = datetime.now(UTC).isoformat()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if client.has_pending_idle():
                client.idle_done()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.logout(), 2)
        with contextlib.suppress(Exception):
            if client.protocol.transport is not None:
                client.protocol.transport.close()

    async def _connect(self, lost: asyncio.Event) -> aioimaplib.IMAP4:
        config = self.config

        def on_lost(_exc: Exception | None) -> None:
            lost.set()

        if config.imap_security == "ssl":
            client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                config.imap_host,
                config.imap_port,
                timeout=config.timeout_seconds,
                ssl_context=self._tls,
            )
            client.protocol.conn_lost_cb = on_lost
        else:
            client = aioimaplib.IMAP4(
                config.imap_host,
                config.imap_port,
                timeout=config.timeout_seconds,
                conn_lost_cb=on_lost,
            )
        self._client = client
        try:
            await client.wait_hello_from_server()
            if config.imap_security == "starttls":
                await _starttls(client, config.imap_host, self._tls, config.timeout_seconds)
        except ssl.SSLError as exc:
            raise ConnectionError(
                f"TLS with {config.imap_host}:{config.imap_port} failed: {_tls_reason(exc)}"
            ) from exc
        response = await client.login(config.imap_username, config.imap_password.get_secret_value())
        if response.result != "OK":
            raise PermissionError(f"login refused: {_words(response.lines)}")
        return client

    async def _session(self) -> None:
        """One connection: log in, then select, fetch new mail and wait for more, until the
        connection drops (raises) or the task is cancelled.

        Each round starts with SELECT, whose answer (UIDNEXT) says whether mail came since the
        last round. aioimaplib drops the server's EXISTS announcements that arrive during
        FETCH or STORE, and a server announces new mail once: without this check, mail landing
        during a fetch would wait for the next IDLE timeout. Mail landing after the SELECT is
        announced in the IDLE that follows it."""
        lost = asyncio.Event()
        client = await self._connect(lost)
        validity: str | None = None
        last_uid = 0
        idle = client.has_capability("IDLE")
        while True:
            response = await client.select(self.config.mailbox)
            if response.result != "OK":
                raise LookupError(
                    f"cannot select {self.config.mailbox!r}: {_words(response.lines)}"
                )
            current, uidnext = _uidvalidity(response.lines), _uidnext(response.lines)
            if validity is None:
                validity, last_uid = current, await self._resume(current)
                self._status.update(connected=True, last_error="")
                self._session_ok = True
            elif current != validity:
                raise _Lost(f"UIDVALIDITY changed to {current}")  # the next session rescans
            if last_uid < 0 or uidnext is None or uidnext - 1 > last_uid:
                last_uid = await self._fetch_new(client, validity, last_uid, uidnext)
                if uidnext is not None:
                    continue  # look again: mail may have come while fetching
            if lost.is_set():
                raise _Lost("connection lost")
            if idle:
                await self._idle(client, lost)
            else:
                await _until(lost, self.config.poll_seconds)
            if lost.is_set():
                raise _Lost("connection lost")

    async def _resume(self, validity: str) -> int:
        """Where to continue: the remembered UID if UIDVALIDITY is unchanged; 0 (everything,
        again) when the mailbox was recreated; -1 (only unseen mail) on a first start."""
        assert self._cursors is not None
        stored = await self._cursors.get(self.name, self._cursor_key)
        if stored is None:
            return -1
        stored_validity, _, uid = stored.partition(":")
        if stored_validity != validity:
            logger.warning(
                "email %s: UIDVALIDITY of %s changed (%s → %s); rescanning the mailbox",
                self.name,
                self.config.mailbox,
                stored_validity,
                validity,
            )
            return 0
        return int(uid)

    async def _search(self, client: aioimaplib.IMAP4, *criteria: str) -> list[int]:
        response = await _checked(client.uid_search(*criteria), "SEARCH")
        return sorted(
            {
                int(uid)
                for line in response.lines[:-1]
                for uid in bytes(line).split()
                if uid.isdigit()
            }
        )

    @property
    def _cursor_key(self) -> str:
        return f"uid:{self.config.mailbox}"

    async def _fetch_new(
        self, client: aioimaplib.IMAP4, validity: str, last_uid: int, uidnext: int | None
    ) -> int:
        """Queue the mail after `last_uid` (up to UIDNEXT's, when known) and return the new
        high-water mark. On a first start (-1) that is the mailbox's unseen mail: what people
        already read there stays out."""
        upto = uidnext - 1 if uidnext is not None else None
        if last_uid < 0:
            unseen = await self._search(client, "UNSEEN")
            if upto is None:
                upto = max(await self._search(client, "ALL"), default=0)
            uids = [uid for uid in unseen if uid <= upto]
        else:
            span = f"{last_uid + 1}:{upto if upto is not None else '*'}"
            uids = [uid for uid in await self._search(client, "UID", span) if uid > last_uid]
            if upto is not None:
                uids = [uid for uid in uids if uid <= upto]
        high = max(upto if upto is not None else 0, max(uids, default=0), last_uid, 0)
        if not uids and high != last_uid:
            await self._remember(validity, high)
        # A pipeline of two: while one batch is being queued (database work), the next one is
        # fetched and parsed (IMAP and CPU work). A batch is remembered only once it is queued.
        queuing: asyncio.Task[None] | None = None
        previous: tuple[list[int], int] = ([], high)
        try:
            for start in range(0, len(uids), FETCH_BATCH):
                batch = uids[start : start + FETCH_BATCH]
                mails = [(raw, self._parse(raw)) for _uid, raw in await self._fetch(client, batch)]
                if queuing is not None:
                    await queuing
                    await self._settle(client, validity, *previous)
                # Attachments are stored after the previous batch is queued: both write to the
                # database, and one writer at a time is faster on SQLite.
                inbounds = await self._inbounds(mails)
                queuing = asyncio.create_task(self._queue(inbounds), name=f"email-{self.name}-q")
                previous = (batch, high if start + FETCH_BATCH >= len(uids) else batch[-1])
            if queuing is not None:
                await queuing
                await self._settle(client, validity, *previous)
        finally:
            if queuing is not None and not queuing.done():
                queuing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await queuing
        return high

    async def _settle(
        self, client: aioimaplib.IMAP4, validity: str, batch: Sequence[int], mark: int
    ) -> None:
        """Remembered after queueing, before \\Seen: a crash in between fetches the batch again,
        and the router stores each mail once."""
        await self._remember(validity, mark)
        await _checked(client.uid("store", _uid_set(batch), "+FLAGS.SILENT (\\Seen)"), "STORE")

    async def _remember(self, validity: str, uid: int) -> None:
        assert self._cursors is not None
        await self._cursors.set(self.name, self._cursor_key, f"{validity}:{uid}")

    async def _fetch(
        self, client: aioimaplib.IMAP4, uids: Sequence[int]
    ) -> list[tuple[int, bytes]]:
        response = await _checked(client.uid("fetch", _uid_set(uids), "(UID BODY.PEEK[])"), "FETCH")
        mails: list[tuple[int, bytes]] = []
        lines = response.lines
        for index, line in enumerate(lines[:-1]):
            if isinstance(line, bytearray) and index > 0:
                match = _FETCH_UID.search(bytes(lines[index - 1]))
                if match:
                    mails.append((int(match.group(1)), bytes(line)))
        return sorted(mails)

    async def _idle(self, client: aioimaplib.IMAP4, lost: asyncio.Event) -> None:
        """Wait in IDLE until the server reports something, the IDLE times out, or the
        connection drops."""
        idle = await client.idle_start(timeout=IDLE_SECONDS)
        self._status["idle"] = True
        try:
            push = asyncio.ensure_future(client.wait_server_push(timeout=IDLE_SECONDS + 60))
            dropped = asyncio.ensure_future(lost.wait())
            try:
                done, _ = await asyncio.wait({push, dropped}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when stop() cancels us: leave no waiter behind
                for task in (push, dropped):
                    if not task.done():
                        task.cancel()
            if dropped in done:
                raise _Lost("connection lost while idle")
        finally:
            self._status["idle"] = False
        client.idle_done()
        await asyncio.wait_for(idle, self.config.timeout_seconds)

    async def _inbounds(self, mails: Sequence[tuple[bytes, ParsedMail]]) -> list[Inbound]:
        """What a fetched batch means: customer messages and delivery reports, in mailbox
        order. Auto-replies are dropped here (logged): they must neither open a conversation
        nor be answered."""
        found: list[Inbound] = []
        for raw, parsed in mails:
            inbound = await self._inbound(raw, parsed)
            if inbound is not None:
                found.append(inbound)
        return found

    async def _queue(self, inbounds: Sequence[Inbound]) -> None:
        """Queue a batch: different senders at once (the queue writes them together), one
        sender's mails one after the other, in mailbox order."""
        assert self._emit is not None
        emit = self._emit
        by_sender: dict[str, list[Inbound]] = {}
        for inbound in inbounds:
            by_sender.setdefault(inbound.order_key, []).append(inbound)

        async def in_order(mails: list[Inbound]) -> None:
            for inbound in mails:
                await emit(inbound)
                self._status["received"] += 1
                self._status["last_message_at"] = datetime.now(UTC).isoformat()

        await asyncio.gather(*(in_order(mails) for mails in by_sender.values()))

    async def to_inbound(self, raw: bytes) -> Inbound | None:
        """What one raw mail becomes (None: nothing to queue). Stores its attachments."""
        return await self._inbound(raw, self._parse(raw))

    def _parse(self, raw: bytes) -> ParsedMail:
        return parse_mail(raw, max_attachment_bytes=self.config.max_attachment_bytes)

    async def _inbound(self, raw: bytes, parsed: ParsedMail) -> Inbound | None:
        own_id = bare_id(parsed.message_id)
        external_id = own_id or fallback_id(raw)
        if parsed.kind == "auto_reply":
            self._status["dropped_auto_replies"] += 1
            logger.info("email %s: dropped auto-reply %s", self.name, external_id)
            return None
        sender = _sender(parsed.from_address, parsed.from_name)
        if parsed.kind in ("bounce", "delivery_report"):
            return self._report(parsed, external_id, sender)
        channel, thread = await self._thread(raw, parsed, own_id or external_id)
        html = parsed.html or ""
        attachments: list[Attachment] = []
        notes: list[str] = []
        for part in parsed.attachments:
            url = ""
            if part.data is not None and self._blobs is not None:
                url = await self._blobs.put(
                    part.data,
                    part.filename or "attachment",
                    part.content_type,
                    owner=f"{channel}/{external_id}",
                )
                if part.content_id and html:
                    html = html.replace(f"cid:{bare_id(part.content_id)}", url)
            if part.note:
                notes.append(f"{part.filename}: {part.note}")
            attachments.append(
                Attachment(
                    filename=part.filename or "attachment",
                    content_type=part.content_type,
                    size=part.size,
                    url=url,
                )
            )
        metadata = {"kind": "message", "via": self.name}
        if own_id:
            metadata["message_id"] = own_id
        if parsed.full_text and parsed.full_text != parsed.text:
            metadata["full_text"] = parsed.full_text
        if notes:
            metadata["attachment_notes"] = "\n".join(notes)
        return Inbound(
            channel=channel,
            external_id=external_id,
            sender=sender,
            text=parsed.text or "",
            subject=parsed.subject or "",
            thread_id=thread,
            html=html,
            attachments=tuple(attachments),
            metadata=metadata,
        )

    def _report(self, parsed: ParsedMail, external_id: str, sender: Sender) -> Inbound:
        """A delivery report on one of our replies. `report` says what it means for the reply:
        `failed` (a bounce, or a DSN that gave up, 4.x.x or 5.x.x), `delayed` (the server still
        tries; a returned mail we cannot tell is final counts as this), `delivered` (a DSN
        "delivered"), `read` (a read receipt: MDN "displayed"), or `other` (relayed, expanded,
        deleted unread…), which the router only notes."""
        bounce = parsed.bounce
        permanent = bounce.permanent if bounce else parsed.kind == "bounce"
        action = bounce.action if bounce else ""
        if parsed.kind == "bounce":
            report = "failed" if permanent else "delayed"
        else:
            report = {"delivered": "delivered", "displayed": "read", "delayed": "delayed"}.get(
                action, "other"
            )
        metadata = {
            "kind": "delivery_report",
            "report": report,
            "action": action,
            "original_message_id": bare_id(bounce.original_message_id if bounce else ""),
            "recipient": (bounce.recipient or "") if bounce else "",
            "status": (bounce.status or "") if bounce else "",
            "diagnostic": bounce.diagnostic if bounce else "",
            "permanent": "true" if permanent else "false",
            "via": self.name,
        }
        return Inbound(
            channel=self.name,
            external_id=external_id,
            sender=sender,
            text=parsed.text or "",
            subject=parsed.subject or "",
            metadata=metadata,
        )

    async def _thread(self, raw: bytes, parsed: ParsedMail, own_id: str) -> tuple[str, str | None]:
        """The (channel, thread id) a mail continues. A reply to one of our mails (its token in
        In-Reply-To/References, or in the plus address it was sent to) continues the thread
        that mail was part of, even if the client dropped References, and even when that
        conversation began on another channel (a web form answered by email)."""
        in_reply_to = bare_id(parsed.in_reply_to)
        references = message_ids(parsed.references)
        candidates = " ".join([in_reply_to, *reversed(references)])
        token_id = read_token(self._key, candidates)
        if token_id is None and b"+pk." in raw:  # our plus address: read the recipients
            headers = BytesHeaderParser(policy=compat32).parsebytes(raw, headersonly=True)
            recipients = [
                str(value)
                for name in ("To", "Cc", "Delivered-To", "X-Original-To")
                for value in headers.get_all(name, [])
            ]
            token_id = read_token(self._key, tokens_in_recipients(recipients))
        if token_id is not None and self._cursors is not None:
            stored = await self._cursors.get(self.name, f"sent:{token_id}")
            if stored:
                thread = json.loads(stored)
                return str(thread["channel"]), thread.get("thread_id")
        return self.name, thread_root(own_id, in_reply_to, references)

    # sending -----------------------------------------------------------------------------

    async def send(self, message: Outbound) -> Delivery:
        """Compose and send one reply. Transient trouble (no connection, timeouts, 4xx) raises
        a `DeliveryError` to retry; a 5xx a permanent one with the server's words."""
        if self._cursors is None:
            raise DeliveryError("channel is not running")
        recipient = normalize_email(message.recipient.email or message.recipient.external_id)
        if recipient is None:
            raise DeliveryError("the customer has no email address to reply to", permanent=True)
        token = make_token(self._key, message.message_id)
        # Remember which thread the reply belongs to before it can be answered.
        await self._cursors.set(
            self.name,
            f"sent:{message.message_id}",
            json.dumps({"channel": message.channel, "thread_id": message.thread_id}),
        )
        files = []
        for attachment in message.attachments:
            blob = await self._blobs.get(attachment.url) if self._blobs else None
            if blob is None:
                raise DeliveryError(f"attachment {attachment.filename!r} is gone", permanent=True)
            files.append((blob.filename, blob.content_type, blob.data))
        mail = compose_reply(
            message,
            address=self.config.address,
            display_name=self.config.display_name,
            token=token,
            sent_at=datetime.now(UTC),
            attachments=files,
        )
        await self._smtp_send(mail, recipient)
        return Delivery(external_id=bare_id(mail["Message-ID"]))

    async def _smtp_send(self, mail: Any, recipient: str) -> None:
        config = self.config
        password = config.smtp_password.get_secret_value() if config.smtp_password else None
        try:
            await aiosmtplib.send(
                mail,
                sender=config.address,
                recipients=[recipient],
                hostname=config.smtp_host,
                port=config.smtp_port,
                username=config.smtp_username,
                password=password,
                use_tls=config.smtp_security == "ssl",
                start_tls=config.smtp_security == "starttls",
                tls_context=self._tls if config.smtp_security != "none" else None,
                timeout=config.timeout_seconds,
            )
        except aiosmtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.code < 600
            reason = f"SMTP {exc.code}: {exc.message}"
            self._failed(exc)
            raise DeliveryError(reason, permanent=permanent) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [error.code for error in exc.recipients]
            words = "; ".join(f"{e.code} {e.message}" for e in exc.recipients)
            self._failed(exc)
            raise DeliveryError(
                f"SMTP refused the recipient: {words}", permanent=all(c >= 500 for c in codes)
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._failed(exc)
            untrusted = _certificate_error(exc)
            if untrusted is not None:
                # Not a passing fault: the agent retries once an admin has fixed the server's
                # certificate or `tls_ca_file`.
                raise DeliveryError(
                    f"SMTP TLS with {config.smtp_host}:{config.smtp_port} failed: "
                    f"{_tls_reason(untrusted)}",
                    permanent=True,
                ) from exc
            raise DeliveryError(f"SMTP unreachable: {type(exc).__name__}: {exc}") from exc


def _sender(address: str, name: str) -> Sender:
    normalized = normalize_email(address or "") or (address or "").strip().lower()
    return Sender(
        external_id=normalized, name=name or "", email=normalize_email(address or "") or ""
    )


def _uidvalidity(lines: Sequence[bytes | bytearray]) -> str:
    for line in lines:
        match = _UIDVALIDITY.search(bytes(line))
        if match:
            return match.group(1).decode()
    return "0"


def _uidnext(lines: Sequence[bytes | bytearray]) -> int | None:
    for line in lines:
        match = _UIDNEXT.search(bytes(line))
        if match:
            return int(match.group(1))
    return None


def _uid_set(uids: Sequence[int]) -> str:
    return ",".join(str(uid) for uid in uids)


def _words(lines: Sequence[bytes | bytearray]) -> str:
    return " ".join(bytes(line).decode(errors="replace") for line in lines)[:300]


async def _checked(call: Any, what: str) -> Any:
    response = await call
    if response.result != "OK":
        raise RuntimeError(f"{what} failed: {_words(response.lines)}")
    return response


async def _until(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


async def _starttls(
    client: aioimaplib.IMAP4, host: str, context: ssl.SSLContext, seconds: float
) -> None:
    """Upgrade a plain connection (aioimaplib knows the command but has no helper for it)."""
    protocol = client.protocol
    command = aioimaplib.aioimaplib.Command(
        "STARTTLS", protocol.new_tag(), loop=protocol.loop, timeout=seconds
    )
    response = await asyncio.wait_for(protocol.execute(command), seconds)
    if response.result != "OK":
        raise ConnectionError(f"STARTTLS refused: {_words(response.lines)}")
    loop = asyncio.get_running_loop()
    transport = await loop.start_tls(
        client.protocol.transport,
        client.protocol,
        context,
        server_hostname=host,
        ssl_handshake_timeout=seconds,
    )
    client.protocol.transport = transport
    await asyncio.wait_for(client.protocol.capability(), seconds)


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure behind an exception, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the server's certificate is not trusted ({exc.verify_message}); "
            "check the host name, or trust its CA with tls_ca_file"
        )
    return exc.reason or str(exc)
