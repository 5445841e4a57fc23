"""The database-backed blob store: the files messages carry, in the `attachments` table, and
the files agents upload for a reply before it is sent."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.db import SessionFactory
from storage.models import Attachment
from storage.work import UnitOfWork

URL_PREFIX = "/api/v1/attachments/"


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """Satisfies `channels.base.Blob` (storage does not import channels)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class NewUpload:
    """A file an agent is uploading, already checked against the upload policy."""

    data: bytes
    filename: str
    content_type: str


@dataclass(frozen=True, slots=True)
class Upload:
    """An uploaded file as the API shows it (never its bytes)."""

    id: str
    filename: str
    content_type: str
    size: int
    conversation_id: int
    uploaded_by: int | None
    message_id: int | None
    created_at: datetime

    @property
    def url(self) -> str:
        return URL_PREFIX + self.id


UPLOAD_CHANNEL = "upload"
"""The `channel` of an uploaded file's row: it is named by conversation and uploader instead."""
_UPLOAD_COLUMNS = (
    Attachment.id,
    Attachment.filename,
    Attachment.content_type,
    Attachment.size,
    Attachment.conversation_id,
    Attachment.uploaded_by,
    Attachment.message_id,
    Attachment.created_at,
)


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

    def __init__(self, sessions: SessionFactory, *, work: UnitOfWork | None = None) -> None:
        """`work`: the process's unit of work, which writes go through when given (on SQLite,
        the one writer thread: no wait on the file lock behind the router)."""
        self._sessions = sessions
        self._work = work

    async def _add(self, rows: Sequence[Attachment]) -> None:
        if self._work is not None:
            await self._work.run(_add_all, rows)
            return
        async with self._sessions.begin() as session:
            session.add_all(rows)

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
        await self._add([row])
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

    async def put_uploads(
        self, files: Sequence[NewUpload], *, conversation_id: int, agent_id: int
    ) -> list[Upload]:
        """Store an agent's files for a reply in `conversation_id`, all or none."""
        rows = [
            Attachment(
                id=secrets.token_hex(16),
                channel=UPLOAD_CHANNEL,
                external_id=f"{conversation_id}/{agent_id}",
                filename=file.filename[:255] or "attachment",
                content_type=file.content_type[:200] or "application/octet-stream",
                size=len(file.data),
                sha256=hashlib.sha256(file.data).hexdigest(),
                data=file.data,
                conversation_id=conversation_id,
                uploaded_by=agent_id,
            )
            for file in files
        ]
        await self._add(rows)
        return [
            Upload(
                id=row.id,
                filename=row.filename,
                content_type=row.content_type,
                size=row.size,
                conversation_id=conversation_id,
                uploaded_by=agent_id,
                message_id=None,
                created_at=row.created_at,
            )
            for row in rows
        ]

    async def upload(self, upload_id: str) -> Upload | None:
        """An uploaded file's description (not its bytes); None for no such upload (a file a
        customer's message carried is not an upload)."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(*_UPLOAD_COLUMNS).where(
                        Attachment.id == upload_id, Attachment.conversation_id.is_not(None)
                    )
                )
            ).one_or_none()
        if row is None or row.conversation_id is None:
            return None
        return Upload(
            id=row.id,
            filename=row.filename,
            content_type=row.content_type,
            size=row.size,
            conversation_id=row.conversation_id,
            uploaded_by=row.uploaded_by,
            message_id=row.message_id,
            created_at=row.created_at,
        )

    async def delete_upload(self, upload_id: str, *, agent_id: int) -> bool:
        """Delete an agent's own upload that no message carries yet; False if there is none."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(Attachment).where(
                    Attachment.id == upload_id,
                    Attachment.conversation_id.is_not(None),
                    Attachment.uploaded_by == agent_id,
                    Attachment.message_id.is_(None),
                )
            )
        return bool(getattr(result, "rowcount", 0))


def _add_all(session: Session, rows: Sequence[Attachment]) -> None:
    session.add_all(rows)


def delete_unsent_uploads(session: Session, before: datetime) -> int:
    """A unit of work: delete uploads that no reply took and that are older than `before`."""
    result = session.execute(
        delete(Attachment).where(
            Attachment.message_id.is_(None),
            Attachment.conversation_id.is_not(None),
            Attachment.created_at < before,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
