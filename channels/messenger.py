"""The Messenger and Instagram Direct channels: one Facebook page or one Instagram professional
account, both through Meta's Send API (`/me/messages` with the page's token). Meta posts to
`/channels/meta/<name>/webhook`.

Parsing is `channels.messenger_events`'s, the webhook and media handling
`channels.meta_channel`'s."""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from channels.base import Delivery, DeliveryError, Outbound, Sender
from channels.messenger_comments import comment_of, is_comment_thread
from channels.messenger_events import WATERMARK, parse_entry
from channels.meta_channel import MetaChannel, MetaConfig
from channels.meta_events import Draft, choice_id, cut, report, split_text
from channels.meta_graph import GraphError

logger = logging.getLogger(__name__)

MAX_QUICK_REPLIES = 13
REMEMBERED = 200
"""Replies remembered per customer, for read receipts that only carry a time."""
NAMES = 10_000


class MessengerConfig(MetaConfig):
    type: Literal["messenger"] = "messenger"
    page_id: str = Field(pattern=r"^[0-9]{1,32}$")
    """The Facebook page's id; `access_token` is that page's token."""
    fetch_profile_names: bool = True
    comments: Literal["off", "public", "private"] = "off"
    """Comments on the account's posts open conversations too; replies to them go as a
    reply comment (`public`) or as a private message to the commenter (`private`)."""


class InstagramConfig(MetaConfig):
    type: Literal["instagram"] = "instagram"
    account_id: str = Field(pattern=r"^[0-9]{1,32}$")
    """The Instagram professional account's id; `access_token` is its linked page's token."""
    fetch_profile_names: bool = True
    comments: Literal["off", "public", "private"] = "off"
    """Comments on the account's posts open conversations too; replies to them go as a
    reply comment (`public`) or as a private message to the commenter (`private`)."""


def attachment_kind(content_type: str) -> str:
    for prefix in ("image", "video", "audio"):
        if content_type.startswith(prefix + "/"):
            return prefix
    return "file"


class MessengerChannel(MetaChannel):
    """A Facebook page's Messenger inbox, or (`InstagramConfig`) an Instagram account's."""

    def __init__(self, config: MessengerConfig | InstagramConfig) -> None:
        super().__init__(config)
        if isinstance(config, InstagramConfig):
            self.platform, self.object_name = "instagram", "instagram"
            self.account_id, self.text_limit = config.account_id, 1000
        else:
            self.platform, self.object_name = "messenger", "page"
            self.account_id, self.text_limit = config.page_id, 2000
        self._status["platform"] = self.platform
        self.comments = config.comments
        self._fetch_names = config.fetch_profile_names
        self._names: OrderedDict[str, str] = OrderedDict()
        self._sent: dict[str, deque[tuple[str, int]]] = {}

    # receiving -----------------------------------------------------------------------------

    def parse_entry(self, entry: Mapping[str, Any]) -> list[Draft]:
        drafts: list[Draft] = []
        for draft in parse_entry(
            entry,
            account_id=self.account_id,
            platform=self.platform,
            comments=self.comments != "off",
        ):
            if draft.metadata.get("kind") == WATERMARK:
                drafts.extend(self._watermarked(draft))
            else:
                drafts.append(draft)
        return drafts

    def _watermarked(self, draft: Draft) -> list[Draft]:
        """Reports on the replies to this customer sent before the receipt's watermark."""
        what = draft.metadata["report"]
        watermark = int(draft.metadata[WATERMARK])
        sent = self._sent.get(draft.sender.external_id, deque())
        reports = [
            report(
                f"{what}:{mid}",
                sender=draft.sender,
                provider_id=mid,
                what=what,
                at=draft.received_at,
            )
            for mid, at in sent
            if at <= watermark
        ]
        if what == "read":
            self._sent[draft.sender.external_id] = deque(
                ((mid, at) for mid, at in sent if at > watermark), maxlen=REMEMBERED
            )
        return reports

    async def enrich(self, draft: Draft) -> Draft:
        """The sender's name from the Graph API (cached); without it, the message as it is."""
        if (
            draft.sender.name
            or not self._fetch_names
            or draft.metadata.get("kind") == "delivery_report"
        ):
            return draft
        name = await self._name(draft.sender.external_id)
        if not name:
            return draft
        sender = Sender(external_id=draft.sender.external_id, name=name)
        return Draft(
            external_id=draft.external_id,
            sender=sender,
            thread_id=draft.thread_id,
            text=draft.text,
            received_at=draft.received_at,
            media=draft.media,
            metadata=draft.metadata,
        )

    async def _name(self, user: str) -> str:
        if user in self._names:
            self._names.move_to_end(user)
            return self._names[user]
        name = ""
        if self.graph is not None:
            fields = "name,username" if self.platform == "instagram" else "name"
            try:
                answer = await self.graph.call("GET", user, params={"fields": fields}, retry=False)
                name = str(answer.get("name") or answer.get("username") or "")[:200]
            except GraphError as exc:
                logger.info(
                    "%s %s: no profile name for %s: %s", self.platform, self.name, user, exc.reason
                )
        self._names[user] = name
        if len(self._names) > NAMES:
            self._names.popitem(last=False)
        return name

    # sending -------------------------------------------------------------------------------

    async def send(self, message: Outbound) -> Delivery:
        """Deliver a reply through `/me/messages`. Raises `DeliveryError`: permanent when Meta
        refuses it (outside the 24-hour window, blocked, bad token), transient otherwise."""
        if self.graph is None or self._cursors is None:
            raise DeliveryError("channel is not running")
        recipient = message.thread_id or message.recipient.external_id
        if is_comment_thread(recipient):
            recipient = message.recipient.external_id
        if not recipient:
            raise DeliveryError(f"no {self.platform} recipient to send to", permanent=True)
        try:
            delivery = await self._send(message, recipient)
        except DeliveryError as exc:
            self.failed(exc.reason)
            raise
        self.sent_now()
        return delivery

    async def _send(self, message: Outbound, recipient: str) -> Delivery:
        assert self.graph is not None and self._cursors is not None
        if message.template is not None:
            raise DeliveryError(f"{self.platform} has no message templates", permanent=True)
        if is_comment_thread(message.thread_id):
            return await self._answer_comment(message)
        texts = split_text(message.text, self.text_limit) if message.text.strip() else []
        if not texts and not message.attachments and not message.quick_replies:
            raise DeliveryError("an empty reply", permanent=True)
        files = []
        for attachment in message.attachments:
            blob = await self._blobs.get(attachment.url) if self._blobs else None
            if blob is None:
                raise DeliveryError(f"attachment {attachment.filename!r} is gone", permanent=True)
            files.append(blob)
        bodies: list[dict[str, Any] | Any] = [{"text": text} for text in texts]
        bodies.extend(files)
        if message.quick_replies:
            replies = [
                {
                    "content_type": "text",
                    "title": cut(choice, 20),
                    "payload": choice_id(choice, 1000),
                }
                for choice in message.quick_replies[:MAX_QUICK_REPLIES]
            ]
            if not bodies or not isinstance(bodies[-1], dict):
                bodies.append({"text": "…"})
            bodies[-1] = {**bodies[-1], "quick_replies": replies}
        progress_key = f"sent:{message.message_id}"
        done = int(await self._cursors.get(self.name, progress_key) or 0) if len(bodies) > 1 else 0
        last = ""
        for index, body in enumerate(bodies):
            if index < done:
                continue
            if isinstance(body, dict):
                answer = await self.graph.call(
                    "POST",
                    "me/messages",
                    json={
                        "recipient": {"id": recipient},
                        "messaging_type": "RESPONSE",
                        "message": body,
                    },
                )
            else:
                kind = attachment_kind(body.content_type)
                answer = await self.graph.call(
                    "POST",
                    "me/messages",
                    form={
                        "recipient": json.dumps({"id": recipient}),
                        "messaging_type": "RESPONSE",
                        "message": json.dumps(
                            {"attachment": {"type": kind, "payload": {"is_reusable": False}}}
                        ),
                        "filedata": (body.filename, body.content_type, body.data),
                    },
                )
            last = str(answer.get("message_id") or "")
            if last:
                sent = self._sent.setdefault(recipient, deque(maxlen=REMEMBERED))
                sent.append((last, int(time.time() * 1000)))
            if len(bodies) > 1:
                await self._cursors.set(self.name, progress_key, str(index + 1))
        return Delivery(external_id=last)

    async def _answer_comment(self, message: Outbound) -> Delivery:
        """A reply in a comment conversation: a reply comment under the customer's latest
        comment, or Meta's private reply to it (one per comment, within 7 days)."""
        assert self.graph is not None
        comment = comment_of(message.in_reply_to)
        if not comment:
            raise DeliveryError("no comment of the customer's to answer", permanent=True)
        if message.attachments:
            raise DeliveryError("a reply to a comment cannot carry files", permanent=True)
        text = message.text.strip()
        if not text:
            raise DeliveryError("an empty reply", permanent=True)
        if self.comments == "private":
            answer = await self.graph.call(
                "POST",
                "me/messages",
                json={"recipient": {"comment_id": comment}, "message": {"text": text}},
            )
            return Delivery(external_id=str(answer.get("message_id") or ""))
        limit = 2200 if self.platform == "instagram" else 8000
        if len(text) > limit:
            raise DeliveryError(f"a comment holds at most {limit} characters", permanent=True)
        edge = "replies" if self.platform == "instagram" else "comments"
        answer = await self.graph.call("POST", f"{comment}/{edge}", json={"message": text})
        return Delivery(external_id=str(answer.get("id") or ""))
