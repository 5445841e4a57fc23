"""Sending a reply through the WhatsApp Cloud API: a template, or text split at 4096
characters, files uploaded to `/{phone-number-id}/media` and sent by id, and the bot's
choices as reply buttons (up to 3) or a list message (up to 10)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from channels.base import BlobStore, CursorStore, Delivery, DeliveryError, Outbound, TemplateMessage
from channels.meta_events import choice_id, cut, persian, split_text
from channels.meta_graph import GraphClient

TEXT_LIMIT = 4096
BODY_LIMIT = 1024
"""An interactive message's body."""
MAX_BUTTONS = 3
MAX_ROWS = 10

Step = Callable[[], Awaitable[Mapping[str, Any]]]


def media_kind(content_type: str) -> str:
    """The WhatsApp message type a file goes as (anything else is a document)."""
    if content_type in ("image/jpeg", "image/png"):
        return "image"
    if content_type in ("video/mp4", "video/3gpp"):
        return "video"
    if content_type in ("audio/aac", "audio/mp4", "audio/mpeg", "audio/amr", "audio/ogg"):
        return "audio"
    return "document"


def template_body(template: TemplateMessage) -> dict[str, Any]:
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if template.parameters:
        body["components"] = [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": value} for value in template.parameters],
            }
        ]
    return body


def interactive(text: str, choices: tuple[str, ...]) -> dict[str, Any]:
    """Reply buttons for up to 3 choices, a list message for more (the first 10)."""
    body = {"text": cut(text.strip() or "…", BODY_LIMIT)}
    if len(choices) <= MAX_BUTTONS:
        buttons = [
            {"type": "reply", "reply": {"id": choice_id(choice, 256), "title": cut(choice, 20)}}
            for choice in choices
        ]
        return {"type": "button", "body": body, "action": {"buttons": buttons}}
    label = "انتخاب کنید" if persian(text + "".join(choices)) else "Choose"
    rows = []
    for choice in choices[:MAX_ROWS]:
        row = {"id": choice_id(choice, 200), "title": cut(choice, 24)}
        if len(choice) > 24:
            row["description"] = cut(choice, 72)
        rows.append(row)
    return {
        "type": "list",
        "body": body,
        "action": {"button": label, "sections": [{"title": label, "rows": rows}]},
    }


class WhatsAppSender:
    """Delivers one `Outbound` as one or more Cloud API messages. How many went out is kept in
    the cursor store, so a retry after a failure half-way does not send the first twice."""

    def __init__(
        self,
        graph: GraphClient,
        *,
        channel: str,
        phone_number_id: str,
        cursors: CursorStore,
        blobs: BlobStore | None,
    ) -> None:
        self._graph = graph
        self._channel = channel
        self._phone = phone_number_id
        self._cursors = cursors
        self._blobs = blobs

    async def send(self, message: Outbound) -> Delivery:
        to = message.thread_id or message.recipient.external_id
        if not to or not to.lstrip("+").isdigit():
            raise DeliveryError("no WhatsApp number to send to", permanent=True)
        to = to.lstrip("+")
        steps = await self._steps(message, to)
        progress_key = f"sent:{message.message_id}"
        done = (
            int(await self._cursors.get(self._channel, progress_key) or 0) if len(steps) > 1 else 0
        )
        last = ""
        for index, step in enumerate(steps):
            if index < done:
                continue
            answer = await step()
            messages = answer.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[0], Mapping):
                last = str(messages[0].get("id") or "")
            if len(steps) > 1:
                await self._cursors.set(self._channel, progress_key, str(index + 1))
        return Delivery(external_id=last)

    def _post(self, to: str, kind: str, content: Mapping[str, Any]) -> Step:
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": kind,
            kind: content,
        }

        async def step() -> Mapping[str, Any]:
            return await self._graph.call("POST", f"{self._phone}/messages", json=body)

        return step

    async def _steps(self, message: Outbound, to: str) -> list[Step]:
        if message.template is not None:
            return [self._post(to, "template", template_body(message.template))]
        steps: list[Step] = []
        texts = split_text(message.text, TEXT_LIMIT) if message.text.strip() else []
        files = [
            await self._file(attachment.url, attachment.filename)
            for attachment in message.attachments
        ]
        if not texts and not files and not message.quick_replies:
            raise DeliveryError("an empty reply", permanent=True)
        choices = message.quick_replies
        lead = ""
        if choices and texts and len(texts[-1]) <= BODY_LIMIT and not files:
            lead = texts.pop()
        for text in texts:
            steps.append(self._post(to, "text", {"body": text, "preview_url": False}))
        for filename, content_type, data in files:
            steps.append(self._upload_step(to, filename, content_type, data))
        if choices:
            steps.append(self._post(to, "interactive", interactive(lead, choices)))
        return steps

    async def _file(self, url: str, filename: str) -> tuple[str, str, bytes]:
        blob = await self._blobs.get(url) if self._blobs else None
        if blob is None:
            raise DeliveryError(f"attachment {filename!r} is gone", permanent=True)
        return blob.filename, blob.content_type, blob.data

    def _upload_step(self, to: str, filename: str, content_type: str, data: bytes) -> Step:
        kind = media_kind(content_type)

        async def step() -> Mapping[str, Any]:
            uploaded = await self._graph.call(
                "POST",
                f"{self._phone}/media",
                form={
                    "messaging_product": "whatsapp",
                    "type": content_type,
                    "file": (filename, content_type, data),
                },
            )
            media_id = str(uploaded.get("id") or "")
            if not media_id:
                raise DeliveryError("Meta accepted the upload but gave no media id")
            content: dict[str, Any] = {"id": media_id}
            if kind == "document":
                content["filename"] = filename
            return await self._post(to, kind, content)()

        return step
