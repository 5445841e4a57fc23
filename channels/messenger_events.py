"""What a Messenger or Instagram Direct webhook entry means to Pishkhan: a pure translation of
its `messaging` events (text, attachments, quick replies, postbacks, Instagram story replies
and mentions, reactions) into `Draft`s, and of delivery and read receipts into reports."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from channels.base import Sender
from channels.messenger_comments import parse_changes
from channels.meta_events import (
    BadEvent,
    Draft,
    MediaRef,
    chosen,
    milliseconds,
    obj,
    report,
    text_of,
)

logger = logging.getLogger(__name__)

WATERMARK = "watermark"
"""A receipt that names no message: everything we sent before `watermark` (ms) was
delivered/read. The channel turns it into reports on the replies it remembers sending."""
FETCHED = {
    # attachment type: (label, default content type, extension)
    "image": ("image", "image/jpeg", "jpg"),
    "video": ("video", "video/mp4", "mp4"),
    "audio": ("audio", "audio/mpeg", "mp3"),
    "file": ("file", "application/octet-stream", "bin"),
    "story_mention": ("story mention", "image/jpeg", "jpg"),
    "ig_reel": ("reel", "video/mp4", "mp4"),
    "reel": ("reel", "video/mp4", "mp4"),
}


def parse_entry(
    entry: Mapping[str, Any], *, account_id: str, platform: str, comments: bool = False
) -> list[Draft]:
    """The drafts in one entry for our page/account (another's entries are ignored), with the
    comments in its `changes` when `comments` is on. Raises `BadEvent` for an entry Meta
    would not send; one bad event is skipped alone (logged)."""
    if str(entry.get("id", "")) != account_id:
        logger.info("%s: an entry for %s, not ours (%s)", platform, entry.get("id"), account_id)
        return []
    drafts: list[Draft] = []
    if comments and entry.get("changes") is not None:
        drafts.extend(
            parse_changes(
                entry["changes"], account_id=account_id, platform=platform, time=entry.get("time")
            )
        )
    events = entry.get("messaging")
    if events is None:
        return drafts  # `standby` (another app has the thread) is not ours to answer
    if not isinstance(events, list):
        raise BadEvent("messaging: a list is required")
    for event in events:
        try:
            drafts.extend(parse_event(event, account_id=account_id))
        except BadEvent as exc:
            logger.warning("%s: skipped an event: %s", platform, exc)
    return drafts


def parse_event(event: Any, *, account_id: str) -> list[Draft]:
    event = obj(event, "messaging[]")
    sender_id = text_of(obj(event.get("sender"), "sender").get("id"), "sender.id", required=False)
    if not sender_id:
        raise BadEvent("sender.id: required")
    if sender_id == account_id:
        return []  # our own page (an echo)
    sender = Sender(external_id=sender_id)
    at = milliseconds(event.get("timestamp"))
    if isinstance(event.get("message"), Mapping):
        draft = _message(event["message"], sender, at)
        return [draft] if draft is not None else []
    if isinstance(event.get("postback"), Mapping):
        return [_postback(event["postback"], sender, at, event.get("timestamp"))]
    if isinstance(event.get("reaction"), Mapping):
        return [_reaction(event["reaction"], sender, at, event.get("timestamp"))]
    for what in ("delivery", "read"):
        if isinstance(event.get(what), Mapping):
            return _receipt(what, event[what], sender, at)
    return []  # optins, referrals, handovers…


def _message(message: Mapping[str, Any], sender: Sender, at: Any) -> Draft | None:
    if message.get("is_echo"):
        return None
    mid = text_of(message.get("mid"), "message.mid")
    metadata: dict[str, str] = {"kind": "message"}
    lines: list[str] = []
    text = message.get("text")
    if isinstance(text, str) and text:
        lines.append(text)
    quick = message.get("quick_reply")
    if isinstance(quick, Mapping) and isinstance(quick.get("payload"), str):
        payload = quick["payload"]
        metadata.update(kind="quick_reply", choice_id=payload[:1000])
        lines = [chosen(payload, lines[0] if lines else "")]
    reply_to = message.get("reply_to")
    if isinstance(reply_to, Mapping):
        story = reply_to.get("story")
        if isinstance(story, Mapping):
            metadata.update(kind="story_reply", story_id=str(story.get("id") or ""))
            if story.get("url"):
                metadata["story_url"] = str(story["url"])[:2000]
            lines.insert(0, "[replied to your story]")
        elif isinstance(reply_to.get("mid"), str):
            metadata["reply_to"] = reply_to["mid"]
    media: list[MediaRef] = []
    for index, attachment in enumerate(message.get("attachments") or ()):
        _attachment(attachment, mid, index, metadata, lines, media)
    if message.get("is_deleted"):
        metadata["kind"] = "deleted"
        lines.append("[the customer deleted a message]")
    if message.get("is_unsupported") and not lines:
        lines.append("[a message of a kind not shown here]")
    if not lines:
        raise BadEvent(f"{mid}: no text or attachments")
    return Draft(
        external_id=mid,
        sender=sender,
        thread_id=sender.external_id,
        text="\n".join(lines),
        received_at=at,
        media=tuple(media),
        metadata=metadata,
    )


def _attachment(
    attachment: Any,
    mid: str,
    index: int,
    metadata: dict[str, str],
    lines: list[str],
    media: list[MediaRef],
) -> None:
    if not isinstance(attachment, Mapping):
        return
    kind = str(attachment.get("type") or "")
    payload = attachment.get("payload")
    url = payload.get("url") if isinstance(payload, Mapping) else None
    if kind == "story_mention":
        metadata["kind"] = "story_mention"
        lines.append("[mentioned you in their story]")
    if kind in FETCHED and isinstance(url, str) and url:
        label, content_type, ext = FETCHED[kind]
        name = f"{kind}_{mid[-12:]}_{index}.{ext}"
        media.append(MediaRef(filename=name, content_type=content_type, label=label, url=url))
        if kind != "story_mention" and not lines:
            lines.append(f"[{label}]")
        return
    title = attachment.get("title") or (
        payload.get("title") if isinstance(payload, Mapping) else ""
    )
    shown = " ".join(str(part) for part in (title, url) if part)
    lines.append(f"[{kind or 'attachment'}] {shown}".strip())


def _postback(postback: Mapping[str, Any], sender: Sender, at: Any, stamp: Any) -> Draft:
    """A tapped button of a template or the persistent menu: its title, as if typed."""
    title = str(postback.get("title") or "")
    payload = str(postback.get("payload") or "")
    mid = postback.get("mid")
    external_id = mid if isinstance(mid, str) and mid else f"postback:{sender.external_id}:{stamp}"
    return Draft(
        external_id=external_id,
        sender=sender,
        thread_id=sender.external_id,
        text=chosen(payload, title) or "[button]",
        received_at=at,
        metadata={"kind": "postback", "payload": payload[:1000]},
    )


def _reaction(reaction: Mapping[str, Any], sender: Sender, at: Any, stamp: Any) -> Draft:
    target = text_of(reaction.get("mid"), "reaction.mid")
    emoji = str(reaction.get("emoji") or reaction.get("reaction") or "")
    removed = reaction.get("action") == "unreact"
    return Draft(
        external_id=f"reaction:{target}:{sender.external_id}:{stamp}",
        sender=sender,
        thread_id=sender.external_id,
        text="[removed a reaction]" if removed else f"[reacted {emoji} to a message]",
        received_at=at,
        metadata={"kind": "reaction", "reaction_to": target, "reaction": "" if removed else emoji},
    )


def _receipt(what: str, receipt: Mapping[str, Any], sender: Sender, at: Any) -> list[Draft]:
    status = "delivered" if what == "delivery" else "read"
    mids = receipt.get("mids")
    if isinstance(receipt.get("mid"), str):
        mids = [receipt["mid"]]
    if isinstance(mids, list) and mids:
        return [
            report(f"{status}:{mid}", sender=sender, provider_id=mid, what=status, at=at)
            for mid in mids
            if isinstance(mid, str) and mid
        ]
    watermark = receipt.get("watermark")
    if not isinstance(watermark, int | float):
        raise BadEvent(f"{what}: mids or watermark required")
    return [
        Draft(
            external_id=f"{status}:{sender.external_id}:{int(watermark)}",
            sender=sender,
            thread_id=sender.external_id,
            text="",
            received_at=at,
            metadata={"kind": WATERMARK, "report": status, WATERMARK: str(int(watermark))},
        )
    ]
