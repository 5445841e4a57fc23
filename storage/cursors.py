"""The database-backed cursor store channels remember their positions in."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.db import SessionFactory
from storage.models import ChannelCursor, utcnow


class SqlCursorStore:
    """Implements `channels.base.CursorStore` on the `channel_cursors` table."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def get(self, channel: str, key: str) -> str | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(ChannelCursor.value).where(
                    ChannelCursor.channel == channel, ChannelCursor.key == key
                )
            )

    async def set(self, channel: str, key: str, value: str) -> None:
        async with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = sqlite_insert if dialect == "sqlite" else pg_insert
            statement = insert(ChannelCursor).values(
                channel=channel, key=key, value=value, updated_at=utcnow()
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["channel", "key"],
                    set_={"value": value, "updated_at": utcnow()},
                )
            )
