"""The database-backed blob store: the files messages carry, in the `attachments` table."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from storage.db import SessionFactory
from storage.models import Attachment

URL_PREFIX = "/api/v1/attachments/"


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """Satisfies `channels.base.Blob` (storage does not import channels)."""

    filename: str
    content_type: str
    data: bytes


def attachment_id(url: str) -> str | None:
    """The attachment id in one of our download URLs, else None."""
    if not url.startswith(URL_PREFIX):
        return None
    found = url[len(URL_PREFIX) :]
    return found if found.isalnum() and len(found) <= 32 else None


class SqlBlobStore:
    """Implements `channels.base.BlobStore`. Files live in the database beside their messages,
    so a backup holds both and nothing else needs mounting; the channel's size limit keeps
    them reasonable."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def put(self, data: bytes, filename: str, content_type: str, *, owner: str) -> str:
        channel, _, external_id = owner.partition("/")
        row = Attachment(
            id=secrets.token_hex(16),
            channel=channel,
            external_id=external_id[:500],
            filename=filename[:255] or "attachment",
            content_type=content_type[:200] or "application/octet-stream",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            data=data,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return URL_PREFIX + row.id

    async def get(self, url: str) -> StoredBlob | None:
        found = attachment_id(url)
        if found is None:
            return None
        async with self._sessions() as session:
            row = await session.get(Attachment, found)
            if row is None:
                return None
            return StoredBlob(filename=row.filename, content_type=row.content_type, data=row.data)
