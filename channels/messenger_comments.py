"""Comments on the Facebook page's posts (the `feed` webhook field) and on the Instagram
account's media (`comments`), as messages: each author's comments under one post are one
conversation (`comments:<post>:<author>`), and the author is the same identity as in Direct
and Messenger, so the customer's panel shows both. Replies go back publicly (a reply comment)
or privately (Meta's private reply into Messenger/Direct), as the channel is configured."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from channels.base import Sender
from channels.meta_events import BadEvent, Draft, milliseconds, obj, text_of

THREAD_PREFIX = "comments:"
ID_PREFIX = "comment:"


def parse_changes(changes: Any, *, account_id: str, platform: str, time: Any = None) -> list[Draft]:
    """The comments among an entry's `changes`; other fields and our own comments are
    skipped. Raises `BadEvent` for a comment that lacks what Meta always sends."""
    if not isinstance(changes, list):
        raise BadEvent("changes: a list is required")
    drafts: list[Draft] = []
    for change in changes:
        change = obj(change, "changes[]")
        value = change.get("value")
        if platform == "instagram" and change.get("field") == "comments":
            draft = _instagram(obj(value, "changes[].value"), account_id, time)
        elif platform == "messenger" and change.get("field") == "feed":
            draft = _facebook(obj(value, "changes[].value"), account_id)
        else:
            continue
        if draft is not None:
            drafts.append(draft)
    return drafts


def _facebook(value: Mapping[str, Any], page_id: str) -> Draft | None:
    if value.get("item") != "comment" or value.get("verb") != "add":
        return None  # posts, likes, edits and removals
    comment_id = text_of(value.get("comment_id"), "feed.comment_id")
    post_id = text_of(value.get("post_id"), "feed.post_id")
    author = obj(value.get("from"), "feed.from")
    author_id = text_of(author.get("id"), "feed.from.id")
    if author_id == page_id:
        return None  # the page's own comments (our replies)
    text = str(value.get("message") or "")
    photo = value.get("photo")
    if isinstance(photo, str) and photo:
        text = "\n".join(part for part in (text, f"[photo] {photo}") if part)
    created = value.get("created_time")
    at = datetime.fromtimestamp(created, UTC) if isinstance(created, int) else datetime.now(UTC)
    return _draft(comment_id, post_id, author_id, str(author.get("name") or ""), text, at, {})


def _instagram(value: Mapping[str, Any], account_id: str, time: Any) -> Draft | None:
    comment_id = text_of(value.get("id"), "comments.id")
    author = obj(value.get("from"), "comments.from")
    author_id = text_of(author.get("id"), "comments.from.id")
    if author_id == account_id:
        return None
    media = value.get("media")
    post_id = str(media.get("id") or "") if isinstance(media, Mapping) else ""
    if not post_id:
        raise BadEvent(f"comment {comment_id}: media.id is required")
    extra = {"parent_id": str(value["parent_id"])} if value.get("parent_id") else {}
    name = str(author.get("username") or "")
    text = str(value.get("text") or "")
    return _draft(comment_id, post_id, author_id, name, text, milliseconds(time), extra)


def _draft(
    comment_id: str,
    post_id: str,
    author_id: str,
    name: str,
    text: str,
    at: datetime,
    extra: Mapping[str, str],
) -> Draft:
    return Draft(
        external_id=ID_PREFIX + comment_id,
        sender=Sender(external_id=author_id, name=name[:200]),
        thread_id=f"{THREAD_PREFIX}{post_id}:{author_id}",
        text=text or "[a comment without text]",
        received_at=at,
        metadata={"kind": "comment", "comment_id": comment_id, "post_id": post_id, **extra},
    )


def is_comment_thread(thread_id: str | None) -> bool:
    return bool(thread_id and thread_id.startswith(THREAD_PREFIX))


def comment_of(in_reply_to: str | None) -> str:
    """The comment a reply answers: the conversation's latest comment."""
    if in_reply_to and in_reply_to.startswith(ID_PREFIX):
        return in_reply_to[len(ID_PREFIX) :]
    return ""
