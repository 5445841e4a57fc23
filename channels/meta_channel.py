"""What the WhatsApp, Messenger and Instagram channels share: their config keys, the webhook at
`/channels/meta/<name>/webhook` (handshake, signature, size limit, 200 only once every message
is queued), media fetched and stored (or kept as a visible placeholder and fetched again
later), and the channel's status.

Every Meta channel's `type` attribute is `meta`, so the inbox mounts its routes under
`/channels/meta/<name>/` whatever its config `type:` (whatsapp, messenger, instagram)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import Field, SecretStr

from channels.base import (
    Attachment,
    BlobStore,
    CursorStore,
    Delivery,
    Emit,
    Inbound,
    Outbound,
    Rejected,
    Route,
)
from channels.config import ChannelConfig
from channels.meta_events import BadEvent, Draft, MediaRef
from channels.meta_graph import GraphClient, GraphError, Media, MediaTooBig
from channels.meta_webhook import (
    SIGNATURE_HEADER,
    entries,
    handshake,
    read_delivery,
    verify_signature,
)
from channels.request_body import read_body

logger = logging.getLogger(__name__)

GRAPH_URL = "https://graph.facebook.com"
GRAPH_VERSION = "v21.0"
RECENT = 4096


class MetaConfig(ChannelConfig):
    access_token: SecretStr
    """The token the Graph API is called with; write it as `${ENV_NAME}`."""
    app_secret: SecretStr
    """The Meta app's secret, which signs every webhook delivery; `${ENV_NAME}`."""
    verify_token: SecretStr
    """Any string you choose, given to Meta's dashboard too; `${ENV_NAME}`."""
    graph_url: str = GRAPH_URL
    graph_version: str = Field(default=GRAPH_VERSION, pattern=r"^v[0-9]+\.[0-9]+$")
    reply_window_hours: int | None = Field(default=24, ge=1)
    """Free text is allowed this long after the customer's last message (Meta's rule)."""
    max_body_bytes: int = Field(default=3 * 1024 * 1024, ge=1024)
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024, ge=0)
    timeout_seconds: float = Field(default=20.0, gt=0)
    send_attempts: int = Field(default=3, ge=1, le=10)
    """Tries per Graph call when Meta answers 429/5xx or is unreachable, before the reply is
    handed back to the outbound queue's own retries."""
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    media_retry_seconds: tuple[float, ...] = (10.0, 60.0, 300.0)
    """Waits before fetching a file again that could not be fetched when it arrived."""
    default_country: str = Field(default="98", pattern=r"^[1-9][0-9]{0,2}$")


class MetaChannel:
    """The webhook side of a Meta channel; subclasses parse their platform's events
    (`parse_entry`) and send (`send`)."""

    type = "meta"
    platform = ""
    object_name = ""
    """The `object` Meta names in this platform's deliveries."""
    media_authorized = False
    """Whether media downloads carry the token (WhatsApp's do)."""

    def __init__(self, config: MetaConfig) -> None:
        self.name = config.name
        self.config = config
        hours = config.reply_window_hours
        self.reply_window: timedelta | None = timedelta(hours=hours) if hours else None
        self._emit: Emit | None = None
        self._cursors: CursorStore | None = None
        self._blobs: BlobStore | None = None
        self.graph: GraphClient | None = None
        self._recent: deque[str] = deque(maxlen=RECENT)
        self._retries: set[asyncio.Task[None]] = set()
        self._status: dict[str, Any] = {
            "platform": self.platform,
            "connected": False,
            "webhook_url": f"/channels/meta/{config.name}/webhook",
            "last_error": "",
            "last_error_at": None,
            "last_webhook_at": None,
            "last_send_at": None,
            "received": 0,
            "skipped": 0,
        }

    # lifecycle ---------------------------------------------------------------------------

    def use_blobs(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    async def start(self, emit: Emit, cursors: CursorStore) -> None:
        if self.graph is not None:
            return
        config = self.config
        self._emit, self._cursors = emit, cursors
        self.graph = GraphClient(
            base_url=config.graph_url,
            version=config.graph_version,
            token=config.access_token.get_secret_value(),
            timeout_seconds=config.timeout_seconds,
            attempts=config.send_attempts,
            backoff_seconds=config.retry_backoff_seconds,
        )
        self._status["connected"] = True

    async def stop(self) -> None:
        tasks, self._retries = self._retries, set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        graph, self.graph = self.graph, None
        if graph is not None:
            await graph.close()
        self._emit = None
        self._status["connected"] = False

    def status(self) -> Mapping[str, Any]:
        return {"running": self.graph is not None, **self._status}

    def failed(self, reason: str) -> None:
        """Record an error for the status page (the admin's channel list)."""
        self._status["last_error"] = reason
        self._status["last_error_at"] = datetime.now(UTC).isoformat()

    def sent_now(self) -> None:
        self._status["last_send_at"] = datetime.now(UTC).isoformat()
        self._status["connected"] = True

    # what subclasses provide -------------------------------------------------------------

    def parse_entry(self, entry: Mapping[str, Any]) -> list[Draft]:
        """The messages and reports in one entry; raises `BadEvent` for a malformed one."""
        raise NotImplementedError

    async def send(self, message: Outbound) -> Delivery:
        """Deliver a reply through the Graph API; raises `DeliveryError`."""
        raise NotImplementedError

    async def media_url(self, ref: MediaRef) -> str:
        """Where the file's bytes are (WhatsApp looks the media id up first)."""
        return ref.url

    async def enrich(self, draft: Draft) -> Draft:
        """A chance to fill in what the event lacks (Messenger's profile names)."""
        return draft

    # the webhook -------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/webhook", self.handle_handshake),
            Route("POST", "/webhook", self.handle_delivery),
        ]

    async def handle_handshake(self, request: web.Request) -> web.StreamResponse:
        try:
            challenge = handshake(request.query, self.config.verify_token.get_secret_value())
        except Rejected as exc:
            return web.Response(status=exc.status, text=exc.reason)
        return web.Response(text=challenge, content_type="text/plain")

    async def handle_delivery(self, request: web.Request) -> web.StreamResponse:
        try:
            queued = await self._delivery(request)
        except Rejected as exc:
            return web.json_response({"error": exc.reason}, status=exc.status)
        return web.json_response({"queued": queued})

    async def _delivery(self, request: web.Request) -> int:
        body = await read_body(request, self.config.max_body_bytes)
        secret = self.config.app_secret.get_secret_value()
        if not verify_signature(body, request.headers.get(SIGNATURE_HEADER), secret):
            raise Rejected(401, f"missing or wrong {SIGNATURE_HEADER}")
        if self._emit is None:
            raise Rejected(503, "channel is not running")
        delivery = read_delivery(body)
        self._status["last_webhook_at"] = datetime.now(UTC).isoformat()
        kind = delivery.get("object")
        if kind != self.object_name:
            # Signed by our app, so genuine: another object this app subscribes to. A 4xx
            # would only make Meta deliver it again and again.
            self._skip(f"object {kind!r} is not for a {self.platform} channel")
            return 0
        drafts: list[Draft] = []
        for index, entry in enumerate(entries(delivery)):
            try:
                if not isinstance(entry, Mapping):
                    raise BadEvent("not an object")
                drafts.extend(self.parse_entry(entry))
            except BadEvent as exc:
                self._skip(f"entry[{index}]: {exc}")
        queued = 0
        for draft in drafts:
            try:
                queued += await self.accept(draft)
            except Exception as exc:
                # Not queued: Meta delivers the whole delivery again, and the router stores
                # what it already has once.
                logger.exception(
                    "%s %s: could not queue %s", self.platform, self.name, draft.external_id
                )
                raise Rejected(503, f"not queued: {type(exc).__name__}") from None
        return queued

    def _skip(self, reason: str) -> None:
        logger.warning("%s %s: skipped %s", self.platform, self.name, reason)
        self._status["skipped"] += 1
        self._status["last_skipped"] = reason[:300]

    async def accept(self, draft: Draft) -> int:
        """Queue one message (0 if it was queued just now: a redelivery)."""
        assert self._emit is not None
        if draft.external_id in self._recent:
            return 0
        draft = await self.enrich(draft)
        inbound, failed = await self._inbound(draft)
        await self._emit(inbound)
        self._recent.append(draft.external_id)
        self._status["received"] += 1
        if failed:
            task = asyncio.create_task(
                self._fetch_later(draft, failed), name=f"meta-media-{self.name}-{draft.external_id}"
            )
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
        return 1

    async def _inbound(self, draft: Draft) -> tuple[Inbound, list[MediaRef]]:
        """The message with its media stored; those that could not be fetched are listed with
        a placeholder in the text and returned, to be fetched again later."""
        attachments: list[Attachment] = []
        notes: list[str] = []
        failed: list[MediaRef] = []
        for ref in draft.media:
            attachment, note, retry = await self._store(ref, draft.external_id)
            attachments.append(attachment)
            if note:
                notes.append(f"[{ref.label} {ref.filename}: {note}]")
            if retry:
                failed.append(ref)
        metadata = dict(draft.metadata)
        text = draft.text
        if notes:
            metadata["attachment_notes"] = "\n".join(notes)
            text = "\n".join([text, *notes]).strip()
        if failed:
            metadata["pending_media"] = ",".join(ref.media_id or ref.url for ref in failed)[:2000]
        inbound = Inbound(
            channel=self.name,
            external_id=draft.external_id,
            sender=draft.sender,
            text=text,
            thread_id=draft.thread_id,
            attachments=tuple(attachments),
            metadata=metadata,
            received_at=draft.received_at,
        )
        return inbound, failed

    async def _store(self, ref: MediaRef, external_id: str) -> tuple[Attachment, str, bool]:
        """The stored attachment, or the listed one with a note and whether to retry."""
        listed = Attachment(ref.filename, ref.content_type)
        if self.graph is None or self._blobs is None:
            return listed, "not stored (no file store)", False
        try:
            media = await self._fetch(ref)
        except MediaTooBig as exc:
            return listed, f"not stored: {exc.size / 1048576:.1f} MB is over the limit", False
        except GraphError as exc:
            logger.warning(
                "%s %s: could not fetch %s: %s", self.platform, self.name, ref.filename, exc.reason
            )
            self.failed(f"media fetch: {exc.reason}")
            return listed, "could not be fetched yet; trying again", True
        content_type = ref.content_type or media.content_type
        url = await self._blobs.put(
            media.data, ref.filename, content_type, owner=f"{self.name}/{external_id}"
        )
        return Attachment(ref.filename, content_type, len(media.data), url), "", False

    async def _fetch(self, ref: MediaRef) -> Media:
        assert self.graph is not None
        url = await self.media_url(ref)
        return await self.graph.download(
            url, limit=self.config.max_attachment_bytes, authorized=self.media_authorized
        )

    async def _fetch_later(self, draft: Draft, refs: list[MediaRef]) -> None:
        """Fetch again what failed; what arrives is queued as a follow-up message carrying the
        files (`media_for`: the original's id), stored once like any message. The retries
        live in this process: after a restart the placeholder stays."""
        try:
            await self._fetch_rounds(draft, refs)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s %s: fetching media again failed", self.platform, self.name)

    async def _fetch_rounds(self, draft: Draft, refs: list[MediaRef]) -> None:
        for round_, wait in enumerate(self.config.media_retry_seconds, start=1):
            await asyncio.sleep(wait)
            external_id = f"{draft.external_id}:media:{round_}"
            if self._emit is None or self._blobs is None:
                return
            fetched: list[Attachment] = []
            pending: list[MediaRef] = []
            for ref in refs:
                attachment, _, retry = await self._store(ref, external_id)
                if retry:
                    pending.append(ref)
                elif attachment.url:
                    fetched.append(attachment)
            if fetched:
                labels = ", ".join(a.filename for a in fetched)
                await self._emit(
                    Inbound(
                        channel=self.name,
                        external_id=external_id,
                        sender=draft.sender,
                        text=f"[{labels}: fetched after a retry]",
                        thread_id=draft.thread_id,
                        attachments=tuple(fetched),
                        metadata={"media_for": draft.external_id},
                        # The customer's time, not ours: a late file must not reopen the
                        # reply window.
                        received_at=draft.received_at,
                    )
                )
            refs = pending
            if not refs:
                return
        logger.warning(
            "%s %s: gave up fetching media of %s", self.platform, self.name, draft.external_id
        )
