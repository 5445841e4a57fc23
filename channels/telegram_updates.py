"""What a Telegram update means to Pishkhan: a pure translation of a Bot API `Update` into a
`Draft` (an inbound message whose files are still to be downloaded), or None for updates that
carry no customer message (service messages, channel posts, group chats when not allowed)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from telegram import CallbackQuery, Message, Update
from telegram import User as TelegramUser

from channels.base import Sender
from channels.contacts import normalize_phone

ALLOWED_UPDATES = ("message", "edited_message", "callback_query")
"""The update kinds the bot asks Telegram for; everything else is never sent to it."""
QUICK_REPLY_PREFIX = "qr:"
"""Inline buttons carry `qr:<index>`; the tapped button's own text is read back from the
message it sits under (callback data is limited to 64 bytes, a Persian choice often is not)."""
GROUPS = ("group", "supergroup")


class BadUpdate(ValueError):
    """The update is not something Telegram sends (a field missing or of the wrong type)."""


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file a message carries, to fetch with getFile; `size` is Telegram's, when it says."""

    file_id: str
    filename: str
    content_type: str
    size: int | None
    label: str


@dataclass(frozen=True, slots=True)
class Draft:
    """An inbound message before its files are downloaded and stored."""

    external_id: str
    sender: Sender
    thread_id: str
    text: str
    received_at: datetime
    files: tuple[FileRef, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    callback_query_id: str | None = None


def parse_update(
    data: Mapping[str, Any], *, allow_groups: bool = False, default_country: str = "98"
) -> Draft | None:
    """The customer message in one update's JSON, or None when it holds none for us.

    Raises `BadUpdate` when the JSON is not an update Telegram could have sent."""
    if not _is_int(data.get("update_id")):
        raise BadUpdate("update_id: an integer is required")
    _check_shape(data)
    try:
        return _read(Update.de_json(dict(data), None), allow_groups, default_country)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise BadUpdate(f"not a Telegram update: {type(exc).__name__}: {exc}") from None


def _read(update: Update, allow_groups: bool, default_country: str) -> Draft | None:
    if update.callback_query is not None:
        return _callback(update.callback_query, allow_groups=allow_groups)
    if update.edited_message is not None:
        return _message(
            update.edited_message,
            edited=True,
            allow_groups=allow_groups,
            default_country=default_country,
        )
    if update.message is not None:
        return _message(
            update.message, edited=False, allow_groups=allow_groups, default_country=default_country
        )
    return None


def _check_shape(data: Mapping[str, Any]) -> None:
    """The fields we rely on, checked before python-telegram-bot (which is lenient) reads them."""
    for kind in ("message", "edited_message"):
        if kind in data:
            _need_message(data[kind], kind)
    if "callback_query" in data:
        query = data["callback_query"]
        if not isinstance(query, dict) or not isinstance(query.get("id"), str):
            raise BadUpdate("callback_query.id: text is required")
        _need_user(query.get("from"), "callback_query.from")
        if query.get("message") is not None:
            _need_message(query["message"], "callback_query.message")


def _need_message(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise BadUpdate(f"{where}: an object is required")
    if not _is_int(value.get("message_id")) or not _is_int(value.get("date")):
        raise BadUpdate(f"{where}: message_id and date must be integers")
    chat = value.get("chat")
    if not isinstance(chat, dict) or not _is_int(chat.get("id")):
        raise BadUpdate(f"{where}.chat: an object with an integer id is required")
    if not isinstance(chat.get("type"), str):
        raise BadUpdate(f"{where}.chat.type: text is required")
    if value.get("from") is not None:
        _need_user(value["from"], f"{where}.from")
    for field_name in ("text", "caption"):
        if value.get(field_name) is not None and not isinstance(value[field_name], str):
            raise BadUpdate(f"{where}.{field_name}: text is required")


def _need_user(value: Any, where: str) -> None:
    if not isinstance(value, dict) or not _is_int(value.get("id")):
        raise BadUpdate(f"{where}: an object with an integer id is required")
    if not isinstance(value.get("first_name", ""), str):
        raise BadUpdate(f"{where}.first_name: text is required")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sender(who: TelegramUser, phone: str = "") -> tuple[Sender, dict[str, str]]:
    metadata = {"telegram_user_id": str(who.id)}
    if who.username:
        metadata["username"] = who.username
    if who.language_code:
        metadata["language_code"] = who.language_code
    return Sender(external_id=str(who.id), name=who.full_name, phone=phone), metadata


def _message(
    message: Message, *, edited: bool, allow_groups: bool, default_country: str
) -> Draft | None:
    chat = message.chat
    if chat.type == "channel" or message.from_user is None or message.from_user.is_bot:
        return None
    if chat.type in GROUPS and not allow_groups:
        return None
    text = message.text or message.caption or ""
    files = _files(message)
    notes: list[str] = []
    metadata: dict[str, str] = {"kind": "message"}
    phone = ""
    if message.location is not None:
        lat, lon = message.location.latitude, message.location.longitude
        place = ""
        if message.venue is not None:
            place = f"{message.venue.title}, {message.venue.address}\n"
        notes.append(f"📍 {place}{lat:.6f}, {lon:.6f}\n{map_link(lat, lon)}")
        metadata.update(latitude=f"{lat:.6f}", longitude=f"{lon:.6f}")
    if message.contact is not None:
        contact = message.contact
        name = " ".join(p for p in (contact.first_name, contact.last_name or "") if p)
        notes.append(f"📇 {name}: {contact.phone_number}")
        metadata.update(contact_name=name, contact_phone=contact.phone_number)
        # Only the customer's own number says who they are; a friend's card is just content.
        if contact.user_id is not None and contact.user_id == message.from_user.id:
            phone = normalize_phone(contact.phone_number, default_country=default_country) or ""
    if message.sticker is not None:
        notes.append(f"[sticker {message.sticker.emoji or ''}]".replace(" ]", "]"))
    elif files and not text:
        notes.append(f"[{files[0].label}]")
    if not text and not notes:
        if message.effective_attachment is None:
            return None  # a service message: someone joined, a pin, a title change
        notes.append(f"[{type(message.effective_attachment).__name__.lower()}: not shown here]")
    text = "\n".join(part for part in (text, *notes) if part)
    if message.text and message.text.startswith("/start"):
        command, _, payload = message.text.partition(" ")
        if command == "/start" or command.startswith("/start@"):
            metadata["start_payload"] = payload.strip()[:512]
    sender, about = _sender(message.from_user, phone)
    metadata.update(about)
    external_id = f"{chat.id}:{message.message_id}"
    received = message.date
    if edited:
        stamp = message.edit_date or message.date
        metadata["edit_of"] = external_id
        external_id = f"{external_id}:edit:{int(stamp.timestamp())}"
        received = stamp
    if chat.type in GROUPS:
        metadata["group_title"] = chat.title or ""
    return Draft(
        external_id=external_id,
        sender=sender,
        thread_id=str(chat.id),
        text=text,
        received_at=received.astimezone(UTC),
        files=tuple(files),
        metadata=metadata,
    )


def _files(message: Message) -> list[FileRef]:
    unique = message.message_id
    if message.photo:
        biggest = message.photo[-1]
        return [_ref(biggest, f"photo_{unique}.jpg", "image/jpeg", "photo")]
    if message.document is not None:
        doc = message.document
        name = doc.file_name or f"document_{unique}"
        return [_ref(doc, name, doc.mime_type or "application/octet-stream", "file")]
    if message.voice is not None:
        voice = message.voice
        return [_ref(voice, f"voice_{unique}.ogg", voice.mime_type or "audio/ogg", "voice message")]
    if message.video_note is not None:
        return [_ref(message.video_note, f"video_note_{unique}.mp4", "video/mp4", "video message")]
    if message.video is not None:
        video = message.video
        name = video.file_name or f"video_{unique}.mp4"
        return [_ref(video, name, video.mime_type or "video/mp4", "video")]
    if message.animation is not None:
        anim = message.animation
        name = anim.file_name or f"animation_{unique}.mp4"
        return [_ref(anim, name, anim.mime_type or "video/mp4", "animation")]
    if message.audio is not None:
        audio = message.audio
        name = audio.file_name or f"audio_{unique}.mp3"
        return [_ref(audio, name, audio.mime_type or "audio/mpeg", "audio")]
    if message.sticker is not None:
        sticker = message.sticker
        ext, kind = ("webm", "video/webm") if sticker.is_video else ("webp", "image/webp")
        if sticker.is_animated:
            ext, kind = "tgs", "application/x-tgsticker"
        return [_ref(sticker, f"sticker_{unique}.{ext}", kind, "sticker")]
    return []


def _ref(media: Any, filename: str, content_type: str, label: str) -> FileRef:
    return FileRef(
        file_id=media.file_id,
        filename=filename,
        content_type=content_type,
        size=media.file_size,
        label=label,
    )


def _callback(query: CallbackQuery, *, allow_groups: bool) -> Draft | None:
    """A tapped inline button: the customer's answer, as if they had typed the button's text."""
    message = query.message
    chat_id = message.chat.id if message is not None else query.from_user.id
    if message is not None and message.chat.type in GROUPS and not allow_groups:
        return None
    data = query.data or ""
    text = data
    if data.startswith(QUICK_REPLY_PREFIX) and isinstance(message, Message):
        markup = message.reply_markup
        buttons = [b for row in (markup.inline_keyboard if markup else ()) for b in row]
        for button in buttons:
            if button.callback_data == data:
                text = button.text
                break
    if not text:
        return None
    sender, about = _sender(query.from_user)
    metadata = {"kind": "quick_reply", **about}
    if message is not None:
        metadata["reply_to"] = f"{chat_id}:{message.message_id}"
    return Draft(
        external_id=f"cb:{query.id}",
        sender=sender,
        thread_id=str(chat_id),
        text=text,
        received_at=datetime.now(UTC),
        metadata=metadata,
        callback_query_id=query.id,
    )


def map_link(latitude: float, longitude: float) -> str:
    return (
        f"https://www.openstreetmap.org/?mlat={latitude:.6f}&mlon={longitude:.6f}"
        f"#map=16/{latitude:.6f}/{longitude:.6f}"
    )
