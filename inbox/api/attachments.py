"""The files messages carry: downloading them (only for agents who may see the conversation),
and agents uploading files for a reply or note before they send it."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from sqlalchemy import func, select

from inbox.api.base import ApiError, ApiRoute, int_param, json_response, principal
from inbox.api.conversations import load_visible
from inbox.services import SERVICES
from inbox.uploads import Refused, UploadsConfig, check
from storage.blobs import NewUpload, Upload
from storage.models import Attachment, Message

_ID = re.compile(r"^[0-9a-f]{32}$")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f"\\/]')
_CHUNK = 64 * 1024
_PART_OVERHEAD = 16 * 1024
"""What a multipart body may carry beyond the files themselves: boundaries and part headers."""


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the real one per RFC 6266 / 5987."""
    clean = _UNSAFE_NAME.sub("_", filename) or "attachment"
    fallback = clean.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(clean, safe='')}"


def _attachment_id(request: web.Request) -> str:
    attachment_id = request.match_info["id"]
    if not _ID.match(attachment_id):
        raise ApiError(404, f"not found: attachment id {attachment_id!r}")
    return attachment_id


async def get_attachment(request: web.Request) -> web.StreamResponse:
    attachment_id = _attachment_id(request)
    who = principal(request)
    missing = ApiError(404, f"not found: attachment id {attachment_id!r}")
    async with request.app[SERVICES].sessions() as session:
        row = await session.get(Attachment, attachment_id)
        if row is None:
            raise missing
        if row.conversation_id is not None:  # an agent's upload
            if row.message_id is None and row.uploaded_by != who.id:
                raise missing  # not sent yet: the uploader's alone
            conversation_id: int | None = row.conversation_id
        else:
            conversation_id = await session.scalar(
                select(Message.conversation_id).where(
                    Message.channel == row.channel, Message.external_id == row.external_id
                )
            )
        if conversation_id is None:  # its message is not routed (yet): nobody can see it
            raise missing
        try:
            await load_visible(session, who, conversation_id)
        except ApiError:
            raise missing from None
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


def upload_view(upload: Upload) -> dict[str, Any]:
    return {
        "id": upload.id,
        "name": upload.filename,
        "content_type": upload.content_type,
        "size": upload.size,
        "url": upload.url,
        "conversation_id": upload.conversation_id,
        "created_at": upload.created_at.isoformat(),
    }


async def _read_files(request: web.Request, limits: UploadsConfig) -> list[tuple[str, bytes]]:
    """Every `file` part of a multipart body as (name as sent, bytes), stopping as soon as a
    limit is passed; a body that is not multipart form data, or is cut or garbled, is a 4xx."""
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "send multipart/form-data with one or more `file` parts")
    ceiling = limits.max_message_bytes + limits.max_files * _PART_OVERHEAD
    if request.content_length is not None and request.content_length > ceiling:
        raise ApiError(413, f"the files together are larger than {limits.max_message_bytes} bytes")
    files: list[tuple[str, bytes]] = []
    total = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "nested multipart bodies are not accepted")
            if part.name != "file" or part.filename is None:
                raise ApiError(400, f"unexpected part {part.name!r}: send files as `file` parts")
            if len(files) == limits.max_files:
                raise ApiError(413, f"at most {limits.max_files} files at a time")
            data = bytearray()
            while chunk := await part.read_chunk(_CHUNK):
                data += chunk
                if len(data) > limits.max_file_bytes:
                    raise ApiError(
                        413, f"{part.filename}: larger than {limits.max_file_bytes} bytes"
                    )
                if total + len(data) > limits.max_message_bytes:
                    raise ApiError(
                        413, f"the files together are larger than {limits.max_message_bytes} bytes"
                    )
            total += len(data)
            files.append((part.filename, bytes(data)))
    except (ValueError, AssertionError, LookupError, RuntimeError) as exc:
        raise ApiError(400, f"malformed multipart body: {exc}") from None
    if not files:
        raise ApiError(400, "no `file` part in the body")
    return files


async def _unsent(request: web.Request, conversation_id: int, agent_id: int) -> tuple[int, int]:
    """How many uploads, and bytes, this agent has waiting to be sent in the conversation."""
    async with request.app[SERVICES].sessions() as session:
        count, size = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(Attachment.size), 0)).where(
                    Attachment.conversation_id == conversation_id,
                    Attachment.uploaded_by == agent_id,
                    Attachment.message_id.is_(None),
                )
            )
        ).one()
    return int(count), int(size)


async def upload_attachments(request: web.Request) -> web.StreamResponse:
    """Store files for a reply: checked whole (size, type, name) before anything is stored."""
    conversation_id = int_param(request, "id")
    who = principal(request)
    services = request.app[SERVICES]
    async with services.sessions() as session:
        await load_visible(session, who, conversation_id)
    limits = services.config.server.uploads
    received = await _read_files(request, limits)
    try:
        accepted = [check(data, name, limits) for name, data in received]
    except Refused as exc:
        raise ApiError(exc.status, exc.reason) from None
    waiting, waiting_bytes = await _unsent(request, conversation_id, who.id)
    if waiting + len(accepted) > limits.max_files:
        raise ApiError(
            413,
            f"at most {limits.max_files} files go with one reply; {waiting} wait to be sent "
            "here already (send or remove them first)",
        )
    if waiting_bytes + sum(len(data) for _, data in received) > limits.max_message_bytes:
        raise ApiError(
            413,
            f"the files of one reply are at most {limits.max_message_bytes} bytes together, "
            f"and {waiting_bytes} bytes wait to be sent here already",
        )
    uploads = await services.blobs.put_uploads(
        [
            NewUpload(data=data, filename=file.filename, content_type=file.content_type)
            for file, (_, data) in zip(accepted, received, strict=True)
        ],
        conversation_id=conversation_id,
        agent_id=who.id,
    )
    return json_response({"attachments": [upload_view(u) for u in uploads]}, status=201)


async def delete_attachment(request: web.Request) -> web.StreamResponse:
    """Remove one's own upload that has not been sent (the composer's ×)."""
    attachment_id = _attachment_id(request)
    blobs = request.app[SERVICES].blobs
    if not await blobs.delete_upload(attachment_id, agent_id=principal(request).id):
        raise ApiError(404, f"not found: unsent upload id {attachment_id!r}")
    return web.Response(status=204)


ROUTES = [
    ApiRoute(
        "GET",
        "/attachments/{id}",
        get_attachment,
        "agent",
        "Download a file a message carried (if the caller may see its conversation), or one's "
        "own upload not sent yet",
    ),
    ApiRoute(
        "DELETE",
        "/attachments/{id}",
        delete_attachment,
        "agent",
        "Remove one's own upload that no reply has taken",
    ),
    ApiRoute(
        "POST",
        "/conversations/{id}/attachments",
        upload_attachments,
        "agent",
        "Upload files (multipart/form-data, `file` parts) for a reply or note in this "
        "conversation; send their ids with POST /conversations/{id}/messages",
    ),
]
