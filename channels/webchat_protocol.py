"""The website chat's JSON frames (docs/channels/webchat.md): parsing what the widget sends,
pure and strict, and rendering what the server sends."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from channels.base import Attachment, ChatLine, Outbound
from channels.contacts import normalize_email

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
MAX_ATTACHMENTS = 5


class BadFrame(Exception):
    """A frame the server answers with an `error` frame; `code` is stable for the widget."""

    def __init__(self, code: str, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id


@dataclass(frozen=True, slots=True)
class Hello:
    token: str | None
    last_id: int
    name: str
    email: str
    page: str


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Upload:
    """An attachment the widget claims it uploaded, with the server's signed receipt."""

    url: str
    filename: str
    content_type: str
    size: int
    receipt: str


@dataclass(frozen=True, slots=True)
class Message:
    client_id: str
    text: str
    uploads: tuple[Upload, ...]


@dataclass(frozen=True, slots=True)
class Typing:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


Frame = Hello | Contact | Message | Typing | Ping


def _text(value: Any, field: str, limit: int, *, code: str = "bad_frame") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadFrame("bad_frame", f"{field}: must be text")
    if _SURROGATE.search(value):
        raise BadFrame("bad_frame", f"{field}: has a \\u escape that is not a character")
    cleaned = _CONTROL.sub("", value).strip()
    if len(cleaned) > limit:
        raise BadFrame(code, f"{field}: longer than {limit} characters")
    return cleaned


def _email(value: Any) -> str:
    raw = _text(value, "email", 320)
    if not raw:
        return ""
    email = normalize_email(raw)
    if email is None:
        raise BadFrame("bad_email", "email: not an email address")
    return email


def client_id_of(value: Any) -> str:
    if not isinstance(value, str) or not _CLIENT_ID.match(value):
        raise BadFrame("bad_frame", "client_id: 1 to 64 letters, digits, '-' or '_'")
    return value


def _uploads(value: Any, client_id: str) -> tuple[Upload, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise BadFrame("bad_frame", f"attachments: a list of at most {MAX_ATTACHMENTS}", client_id)
    uploads = []
    for item in value:
        if not isinstance(item, dict):
            raise BadFrame("bad_frame", "attachments: each is an object", client_id)
        size = item.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadFrame("bad_frame", "attachments: size must be a number", client_id)
        fields = [item.get(k) for k in ("url", "filename", "content_type", "receipt")]
        texts = [f for f in fields if isinstance(f, str) and len(f) <= 500]
        if len(texts) != len(fields):
            raise BadFrame(
                "bad_frame", "attachments: url, filename, content_type, receipt", client_id
            )
        url, filename, content_type, receipt = texts
        uploads.append(Upload(url, filename, content_type, size, receipt))
    return tuple(uploads)


def parse_frame(raw: str, *, max_chars: int) -> Frame:
    """One frame from the widget, or `BadFrame` saying what is wrong with it."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadFrame("bad_frame", "not JSON") from None
    if not isinstance(data, dict):
        raise BadFrame("bad_frame", "a frame is a JSON object")
    kind = data.get("type")
    if kind == "message":
        client_id = client_id_of(data.get("client_id"))
        try:
            text = _text(data.get("text"), "text", max_chars, code="too_long")
        except BadFrame as exc:
            exc.client_id = client_id
            raise
        uploads = _uploads(data.get("attachments"), client_id)
        if not text and not uploads:
            raise BadFrame("empty", "text: write something or attach a file", client_id)
        return Message(client_id, text, uploads)
    if kind == "typing":
        return Typing()
    if kind == "ping":
        return Ping()
    if kind == "hello":
        token = data.get("token")
        last_id = data.get("last_id", 0)
        if token is not None and not isinstance(token, str):
            raise BadFrame("bad_frame", "token: must be text")
        if not isinstance(last_id, int) or isinstance(last_id, bool) or last_id < 0:
            raise BadFrame("bad_frame", "last_id: a message id (0 for none)")
        return Hello(
            token=token or None,
            last_id=last_id,
            name=_text(data.get("name"), "name", 200),
            email=_email(data.get("email")),
            page=_text(data.get("page"), "page", 1000),
        )
    if kind == "contact":
        return Contact(name=_text(data.get("name"), "name", 200), email=_email(data.get("email")))
    raise BadFrame("bad_frame", "type: one of hello, message, typing, contact, ping")


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def client_part(external_id: str) -> str:
    """The widget's client id in a message's external id (`<visitor>/<client id>`)."""
    return external_id.partition("/")[2]


Link = Callable[[str], str]
"""A blob URL → the visitor's download link for it (`files/<signed token>`, relative to the
channel's base URL); the agents' URL itself never reaches the widget."""


def _files(attachments: tuple[Attachment, ...], link: Link) -> list[dict[str, Any]]:
    return [
        {
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
            "link": link(a.url) if a.url else None,
        }
        for a in attachments
    ]


def line_frame(line: ChatLine, link: Link) -> dict[str, Any]:
    return {
        "type": "message",
        "id": line.id,
        "client_id": client_part(line.external_id) if line.external_id else None,
        "from": "visitor" if line.author_kind == "customer" else line.author_kind,
        "author": line.author_name,
        "text": line.text,
        "attachments": _files(line.attachments, link),
        "quick_replies": list(line.quick_replies),
        "at": line.created_at.isoformat(),
    }


def outbound_frame(message: Outbound, at: str, link: Link) -> dict[str, Any]:
    return {
        "type": "message",
        "id": message.message_id,
        "client_id": None,
        "from": "agent" if message.author_name else "bot",
        "author": message.author_name,
        "text": message.text,
        "attachments": _files(message.attachments, link),
        "quick_replies": list(message.quick_replies),
        "at": at,
    }


def mirror_frame(message: Message, at: str, link: Link) -> dict[str, Any]:
    """A visitor's message as their other open tabs show it."""
    return {
        "type": "message",
        "id": None,
        "client_id": message.client_id,
        "from": "visitor",
        "author": "",
        "text": message.text,
        "attachments": [
            {
                "filename": u.filename,
                "content_type": u.content_type,
                "size": u.size,
                "link": link(u.url),
            }
            for u in message.uploads
        ],
        "quick_replies": [],
        "at": at,
    }


def error_frame(code: str, message: str, client_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if client_id is not None:
        frame["client_id"] = client_id
    return frame
