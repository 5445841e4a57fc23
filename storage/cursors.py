"""The database-backed cursor store channels remember their positions in."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage.db import SessionFactory
from storage.models import ChannelCursor, utcnow
from storage.work import UnitOfWork


class SqlCursorStore:
    """Implements `channels.base.CursorStore` on the `channel_cursors` table.

    Writes go through the process's unit of work when it is given: on SQLite that is the one
    writer thread, so a channel's cursor never waits on the file lock behind the router."""

    def __init__(self, sessions: SessionFactory, *, work: UnitOfWork | None = None) -> None:
        self._sessions = sessions
        self._work = work

    async def get(self, channel: str, key: str) -> str | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(ChannelCursor.value).where(
                    ChannelCursor.channel == channel, ChannelCursor.key == key
                )
            )

    async def set(self, channel: str, key: str, value: str) -> None:
        if self._work is not None:
            await self._work.run(_upsert, channel, key, value)
            return
        async with self._sessions.begin() as session:
            await session.run_sync(_upsert, channel, key, value)


def _upsert(session: Session, channel: str, key: str, value: str) -> None:
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    statement = insert(ChannelCursor).values(
        channel=channel, key=key, value=value, updated_at=utcnow()
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["channel", "key"], set_={"value": value, "updated_at": utcnow()}
        )
    )
