"""Downloading the files messages carry: only for agents who may see the conversation."""

from __future__ import annotations

import re
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import select

from inbox.api.base import ApiError, ApiRoute, principal
from inbox.api.conversations import load_visible
from inbox.services import SERVICES
from storage.models import Attachment, Message

_ID = re.compile(r"^[0-9a-f]{32}$")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f"\\/]')


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the real one per RFC 6266 / 5987."""
    clean = _UNSAFE_NAME.sub("_", filename) or "attachment"
    fallback = clean.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(clean, safe='')}"


async def get_attachment(request: web.Request) -> web.StreamResponse:
    attachment_id = request.match_info["id"]
    if not _ID.match(attachment_id):
        raise ApiError(404, f"not found: attachment id {attachment_id!r}")
    async with request.app[SERVICES].sessions() as session:
        row = await session.get(Attachment, attachment_id)
        if row is None:
            raise ApiError(404, f"not found: attachment id {attachment_id!r}")
        conversation_id = await session.scalar(
            select(Message.conversation_id).where(
                Message.channel == row.channel, Message.external_id == row.external_id
            )
        )
        if conversation_id is None:  # its message is not routed (yet): nobody can see it
            raise ApiError(404, f"not found: attachment id {attachment_id!r}")
        try:
            await load_visible(session, principal(request), conversation_id)
        except ApiError:
            raise ApiError(404, f"not found: attachment id {attachment_id!r}") from None
        return web.Response(
            body=row.data,
            headers={
                "Content-Type": row.content_type or "application/octet-stream",
                "Content-Disposition": content_disposition(row.filename),
                "X-Content-Type-Options": "nosniff",
                # Even opened directly, a file from a customer runs nothing and loads nothing.
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, max-age=3600",
            },
        )


ROUTES = [
    ApiRoute(
        "GET",
        "/attachments/{id}",
        get_attachment,
        "agent",
        "Download a file a message carried (if the caller may see its conversation)",
    ),
]
