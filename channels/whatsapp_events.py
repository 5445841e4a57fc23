"""What a WhatsApp Cloud API webhook entry means to Pishkhan: a pure translation of its
`messages` (text, media, location, contacts, interactive replies, reactions) into `Draft`s
and of its `statuses` into delivery reports on our replies."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from channels.base import Sender
from channels.contacts import normalize_phone
from channels.meta_events import (
    BadEvent,
    Draft,
    MediaRef,
    chosen,
    map_link,
    obj,
    report,
    seconds,
    text_of,
)

logger = logging.getLogger(__name__)

MEDIA = {
    # type: (label, default content type, file extension)
    "image": ("image", "image/jpeg", "jpg"),
    "video": ("video", "video/mp4", "mp4"),
    "audio": ("audio", "audio/ogg", "ogg"),
    "document": ("document", "application/octet-stream", "bin"),
    "sticker": ("sticker", "image/webp", "webp"),
}
STATUSES = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"}


def parse_entry(
    entry: Mapping[str, Any], *, phone_number_id: str, default_country: str = "98"
) -> list[Draft]:
    """The drafts in one entry for our number (other numbers of the account are ignored).
    Raises `BadEvent` when the entry is not what Meta sends; one bad message in a valid entry
    is skipped alone (logged)."""
    changes = entry.get("changes")
    if not isinstance(changes, list):
        raise BadEvent("changes: a list is required")
    drafts: list[Draft] = []
    for change in changes:
        change = obj(change, "changes[]")
        if change.get("field") != "messages":
            continue  # account updates, template status changes…
        value = obj(change.get("value"), "changes[].value")
        number = obj(value.get("metadata"), "value.metadata").get("phone_number_id")
        if str(number) != phone_number_id:
            logger.info(
                "whatsapp: a delivery for number %s, not ours (%s)", number, phone_number_id
            )
            continue
        names = _profile_names(value.get("contacts"))
        for message in _list(value.get("messages")):
            try:
                drafts.append(parse_message(message, names, default_country=default_country))
            except BadEvent as exc:
                logger.warning("whatsapp: skipped a message: %s", exc)
        for status in _list(value.get("statuses")):
            try:
                drafts.append(parse_status(status, default_country=default_country))
            except BadEvent as exc:
                logger.warning("whatsapp: skipped a status: %s", exc)
    return drafts


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadEvent("messages/statuses: a list is required")
    return value


def _profile_names(contacts: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in contacts if isinstance(contacts, list) else ():
        if isinstance(contact, Mapping) and isinstance(contact.get("wa_id"), str):
            profile = contact.get("profile")
            name = profile.get("name") if isinstance(profile, Mapping) else None
            if isinstance(name, str):
                names[contact["wa_id"]] = name.strip()[:200]
    return names


def sender_of(wa_id: str, name: str = "", *, default_country: str = "98") -> Sender:
    """The customer: their WhatsApp id, which is their phone number in international form."""
    phone = normalize_phone("+" + wa_id.lstrip("+"), default_country=default_country) or ""
    return Sender(external_id=wa_id, name=name, phone=phone)


def parse_message(message: Any, names: Mapping[str, str], *, default_country: str = "98") -> Draft:
    message = obj(message, "messages[]")
    wamid = text_of(message.get("id"), "messages[].id")
    wa_id = text_of(message.get("from"), f"{wamid}.from")
    kind = text_of(message.get("type"), f"{wamid}.type")
    metadata: dict[str, str] = {"kind": kind}
    media: list[MediaRef] = []
    text = _content(message, kind, wamid, metadata, media)
    context = message.get("context")
    if isinstance(context, Mapping) and isinstance(context.get("id"), str):
        metadata.setdefault("reply_to", context["id"])
    return Draft(
        external_id=wamid,
        sender=sender_of(wa_id, names.get(wa_id, ""), default_country=default_country),
        thread_id=wa_id,
        text=text,
        received_at=seconds(message.get("timestamp")),
        media=tuple(media),
        metadata=metadata,
    )


def _content(
    message: Mapping[str, Any],
    kind: str,
    wamid: str,
    metadata: dict[str, str],
    media: list[MediaRef],
) -> str:
    """The message's text; its files go to `media` and what else it says to `metadata`."""
    body = message.get(kind)
    if kind == "text":
        return text_of(obj(body, f"{wamid}.text").get("body"), f"{wamid}.text.body")
    if kind in MEDIA:
        part = obj(body, f"{wamid}.{kind}")
        label, default_type, ext = MEDIA[kind]
        if kind == "audio" and part.get("voice"):
            label = "voice message"
        content_type = str(part.get("mime_type") or default_type).split(";")[0].strip()
        filename = str(part.get("filename") or f"{kind}_{wamid[-12:]}.{ext}")
        media.append(
            MediaRef(
                filename=filename[:255],
                content_type=content_type,
                label=label,
                media_id=text_of(part.get("id"), f"{wamid}.{kind}.id"),
            )
        )
        caption = part.get("caption")
        return caption if isinstance(caption, str) and caption else f"[{label}]"
    if kind == "location":
        place = obj(body, f"{wamid}.location")
        try:
            latitude, longitude = float(place["latitude"]), float(place["longitude"])
        except (KeyError, TypeError, ValueError):
            raise BadEvent(f"{wamid}.location: latitude and longitude are required") from None
        metadata["location"] = f"{latitude:.6f},{longitude:.6f}"
        named = " — ".join(str(place[k]) for k in ("name", "address") if place.get(k))
        return "\n".join(
            p for p in (f"[location] {named}".strip(), map_link(latitude, longitude)) if p
        )
    if kind == "contacts":
        return _contacts(body, wamid)
    if kind == "interactive":
        part = obj(body, f"{wamid}.interactive")
        reply_kind = str(part.get("type") or "")
        reply = part.get(reply_kind)
        if reply_kind in ("button_reply", "list_reply") and isinstance(reply, Mapping):
            choice_id = str(reply.get("id") or "")
            title = str(reply.get("title") or "")
            metadata.update(kind="quick_reply", choice_id=choice_id[:256], choice_title=title[:100])
            return chosen(choice_id, title) or "[choice]"
        return f"[interactive {reply_kind or 'reply'}]"
    if kind == "button":  # a template's quick-reply button
        part = obj(body, f"{wamid}.button")
        payload = str(part.get("payload") or "")
        metadata.update(kind="quick_reply", choice_id=payload[:256])
        return str(part.get("text") or payload or "[button]")
    if kind == "reaction":
        part = obj(body, f"{wamid}.reaction")
        target = text_of(part.get("message_id"), f"{wamid}.reaction.message_id")
        emoji = str(part.get("emoji") or "")
        metadata.update(reaction_to=target, reaction=emoji)
        return f"[reacted {emoji} to a message]" if emoji else "[removed a reaction]"
    if kind == "order":
        return "[an order from the catalog]"
    if kind == "system":
        part = body if isinstance(body, Mapping) else {}
        return f"[system: {part.get('body') or part.get('type') or 'notice'}]"
    errors = message.get("errors")
    detail = ""
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        detail = f": {errors[0].get('title') or errors[0].get('message') or ''}".rstrip(": ")
    return f"[{kind} message: not shown here{detail}]"


def _contacts(body: Any, wamid: str) -> str:
    if not isinstance(body, list) or not body:
        raise BadEvent(f"{wamid}.contacts: a list is required")
    lines = ["[shared contacts]"]
    for card in body:
        if not isinstance(card, Mapping):
            continue
        name = card.get("name")
        formatted = name.get("formatted_name") if isinstance(name, Mapping) else None
        phones = [
            str(p.get("phone"))
            for p in card.get("phones") or ()
            if isinstance(p, Mapping) and p.get("phone")
        ]
        emails = [
            str(e.get("email"))
            for e in card.get("emails") or ()
            if isinstance(e, Mapping) and e.get("email")
        ]
        lines.append(" · ".join([str(formatted or "?"), *phones, *emails]))
    return "\n".join(lines)


def parse_status(status: Any, *, default_country: str = "98") -> Draft:
    """A status of one of our messages, as a delivery report."""
    status = obj(status, "statuses[]")
    wamid = text_of(status.get("id"), "statuses[].id")
    what = text_of(status.get("status"), f"status {wamid}.status")
    recipient = text_of(status.get("recipient_id"), f"status {wamid}.recipient_id")
    code, diagnostic = "", ""
    errors = status.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        error = errors[0]
        code = str(error.get("code") or "")
        data = error.get("error_data")
        details = data.get("details") if isinstance(data, Mapping) else None
        diagnostic = " — ".join(
            str(part) for part in (error.get("title") or error.get("message"), details) if part
        )
    return report(
        f"status:{wamid}:{what}",
        sender=sender_of(recipient, default_country=default_country),
        provider_id=wamid,
        what=STATUSES.get(what, what),
        at=seconds(status.get("timestamp")),
        code=code,
        diagnostic=diagnostic,
    )
