"""What the Meta parsers produce: a `Draft` (an inbound message whose media are still to be
fetched) or a delivery report, plus the small readers they share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from channels.base import Sender

REPORT_KIND = "delivery_report"
"""`routing.delivery_reports` recognizes reports by this metadata kind."""


class BadEvent(ValueError):
    """One event of a delivery is not what Meta sends; it is logged and skipped alone."""


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A file a message carries: a WhatsApp media id (looked up through the Graph API) or a
    Messenger/Instagram CDN link."""

    filename: str
    content_type: str
    label: str
    media_id: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class Draft:
    """An inbound message (or a delivery report) before its media are fetched and stored."""

    external_id: str
    sender: Sender
    thread_id: str
    text: str
    received_at: datetime
    media: tuple[MediaRef, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)


def report(
    external_id: str,
    *,
    sender: Sender,
    provider_id: str,
    what: str,
    at: datetime,
    code: str = "",
    diagnostic: str = "",
) -> Draft:
    """A delivery report on our reply `provider_id` (sent, delivered, read or failed)."""
    metadata = {"kind": REPORT_KIND, "report": what, "original_message_id": provider_id}
    if what == "failed":
        metadata["failure"] = "Meta could not deliver it"
    if code:
        metadata["status"] = code
    if diagnostic:
        metadata["diagnostic"] = diagnostic[:1000]
    return Draft(
        external_id=external_id,
        sender=sender,
        thread_id=sender.external_id,
        text="",
        received_at=at,
        metadata=metadata,
    )


def text_of(value: Any, where: str, *, required: bool = True) -> str:
    if isinstance(value, str) and value:
        return value
    if value is None and not required:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool) and not required:
        return str(value)
    raise BadEvent(f"{where}: a string is required")


def obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadEvent(f"{where}: an object is required")
    return value


def seconds(value: Any) -> datetime:
    """WhatsApp's timestamps: seconds, as a string."""
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def milliseconds(value: Any) -> datetime:
    """Messenger's and Instagram's timestamps: milliseconds, as a number."""
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def map_link(latitude: float, longitude: float) -> str:
    return (
        f"https://www.openstreetmap.org/?mlat={latitude:.6f}&mlon={longitude:.6f}"
        f"#map=16/{latitude:.6f}/{longitude:.6f}"
    )


QUICK_REPLY_PREFIX = "qr:"
"""Our buttons carry `qr:` and the whole choice in their id/payload (titles are cut at 20
characters), so the customer's tap reads back as the full choice the bot offered."""


def choice_id(choice: str, limit: int) -> str:
    """A button id/payload for `choice`: the whole choice when it fits, else its first 120
    characters (which the bot matches too)."""
    body = choice if len(choice) + len(QUICK_REPLY_PREFIX) <= limit else choice[:120]
    return QUICK_REPLY_PREFIX + body


def chosen(payload: str, title: str) -> str:
    """What the customer chose: the choice our id carries, else the title they tapped."""
    if payload.startswith(QUICK_REPLY_PREFIX) and len(payload) > len(QUICK_REPLY_PREFIX):
        return payload[len(QUICK_REPLY_PREFIX) :]
    return title or payload


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line or word break when there
    is one in the second half of the piece."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut_at = limit
        window = rest[:limit]
        for separator in ("\n\n", "\n", " "):
            at = window.rfind(separator)
            if at > limit // 2:
                cut_at = at + len(separator)
                break
        pieces.append(rest[:cut_at].rstrip())
        rest = rest[cut_at:].lstrip("\n")
    if rest.strip() or not pieces:
        pieces.append(rest)
    return pieces


def persian(text: str) -> bool:
    return any("\u0600" <= char <= "\u06ff" for char in text)
