"""What a live-chat visitor may see of their conversations, read from the database: history,
how far agents have read them, and whether anyone can answer now."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Attachment, ChatHistory, ChatLine
from routing.business_hours import BusinessCalendar, calendar_for
from routing.config import BusinessHoursConfig, RoutingConfig
from routing.dispatch import load_candidates
from storage.blobs import attachment_id
from storage.db import SessionFactory
from storage.models import (
    Agent,
    Conversation,
    Identity,
    Message,
    ReadMarker,
    Team,
)
from storage.models import (
    Attachment as StoredFile,
)

AVAILABILITY_SECONDS = 5.0
"""How long an availability answer is reused: every visitor's hello asks."""


def within_business_hours(hours: BusinessHoursConfig, now: datetime) -> bool:
    """Whether `now` falls in one of the day's opening spans and on no holiday, in the
    configured time zone."""
    return BusinessCalendar(hours).is_open(now)


@dataclass(frozen=True, slots=True)
class ChatConversation:
    """A visitor's latest conversation and who may see it."""

    id: int
    team_id: int | None
    assignee_id: int | None


def _files(value: Mapping[str, Any]) -> tuple[Attachment, ...]:
    files = value.get("files") if isinstance(value, Mapping) else None
    return tuple(
        Attachment(
            filename=str(f.get("filename", "")),
            content_type=str(f.get("content_type", "")),
            size=int(f.get("size", 0) or 0),
            url=str(f.get("url", "") or ""),
        )
        for f in files or ()
        if isinstance(f, Mapping)
    )


def _choices(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    value = metadata.get("quick_replies") if isinstance(metadata, Mapping) else None
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


class Visitors:
    """Implements the database half of `channels.base.ChatBackend` (the inbox's bridge adds
    the realtime half)."""

    def __init__(
        self,
        sessions: SessionFactory,
        routing: RoutingConfig,
        channel_teams: Mapping[str, str | None],
        *,
        clock: Any = None,
    ) -> None:
        self._sessions = sessions
        self._routing = routing
        self._channel_teams = dict(channel_teams)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._available: dict[str, tuple[float, bool]] = {}

    async def _customer(self, session: AsyncSession, channel: str, visitor: str) -> int | None:
        return await session.scalar(
            select(Identity.customer_id).where(
                Identity.channel == channel, Identity.external_id == visitor
            )
        )

    async def history(self, channel: str, visitor: str, *, after: int, limit: int) -> ChatHistory:
        async with self._sessions() as session:
            customer_id = await self._customer(session, channel, visitor)
            if customer_id is None:
                return ChatHistory()
            conversations = (
                await session.execute(
                    select(Conversation.id, Conversation.status)
                    .where(Conversation.customer_id == customer_id, Conversation.channel == channel)
                    .order_by(Conversation.id)
                )
            ).all()
            ids = [row.id for row in conversations]
            if not ids:
                return ChatHistory()
            messages = (
                await session.scalars(
                    select(Message)
                    .where(
                        Message.conversation_id.in_(ids),
                        Message.id > after,
                        Message.private.is_(False),
                        Message.author_kind.in_(("customer", "agent", "bot")),
                    )
                    .order_by(Message.id.desc())
                    .limit(limit)
                )
            ).all()
            authors = {
                row.id: row.name
                for row in await session.execute(
                    select(Agent.id, Agent.name).where(
                        Agent.id.in_({m.author_agent_id for m in messages if m.author_agent_id})
                    )
                )
            }
            read = await self._read_external_id(session, ids, visitor)
        lines = tuple(
            ChatLine(
                id=m.id,
                author_kind=m.author_kind,
                author_name=authors.get(m.author_agent_id or 0, ""),
                text=m.text,
                created_at=m.created_at,
                external_id=(m.external_id or "") if m.direction == "in" else "",
                attachments=_files(m.attachments),
                quick_replies=_choices(m.metadata_),
            )
            for m in reversed(messages)
        )
        return ChatHistory(lines=lines, status=conversations[-1].status, read_external_id=read)

    async def _read_external_id(
        self, session: AsyncSession, conversation_ids: Sequence[int], visitor: str
    ) -> str:
        upto = await session.scalar(
            select(func.max(ReadMarker.last_read_message_id)).where(
                ReadMarker.conversation_id.in_(conversation_ids)
            )
        )
        if not upto:
            return ""
        found = await session.scalar(
            select(Message.external_id)
            .where(
                Message.conversation_id.in_(conversation_ids),
                Message.direction == "in",
                Message.id <= upto,
                Message.external_id.startswith(visitor + "/", autoescape=True),
            )
            .order_by(Message.id.desc())
            .limit(1)
        )
        return found or ""

    async def read_upto(self, channel: str, visitors: Sequence[str]) -> Mapping[str, str]:
        """Per visitor with a read marker, their newest message an agent has read."""
        found: dict[str, str] = {}
        async with self._sessions() as session:
            rows = await session.execute(
                select(Identity.external_id, Identity.customer_id).where(
                    Identity.channel == channel, Identity.external_id.in_(visitors)
                )
            )
            customers = {external_id: customer_id for external_id, customer_id in rows}
            if not customers:
                return found
            read_rows = await session.execute(
                select(Conversation.customer_id, Conversation.id)
                .join(ReadMarker, ReadMarker.conversation_id == Conversation.id)
                .where(
                    Conversation.customer_id.in_(set(customers.values())),
                    Conversation.channel == channel,
                )
                .distinct()
            )
            read: dict[int, list[int]] = {}
            for customer_id, conversation_id in read_rows:
                read.setdefault(customer_id, []).append(conversation_id)
            for visitor, customer_id in customers.items():
                if customer_id in read:
                    external_id = await self._read_external_id(session, read[customer_id], visitor)
                    if external_id:
                        found[visitor] = external_id
        return found

    async def available(self, channel: str) -> bool:
        """Within business hours, and an agent online with free capacity in the channel's team
        (any agent when the channel has none). Reused for a few seconds."""
        now = time.monotonic()
        cached = self._available.get(channel)
        if cached is not None and now - cached[0] < AVAILABILITY_SECONDS:
            return cached[1]
        team = self._channel_teams.get(channel)
        result = calendar_for(self._routing, team).is_open(self._clock())
        if result:
            async with self._sessions() as session:
                team_name = self._channel_teams.get(channel)
                team_id = (
                    await session.scalar(select(Team.id).where(Team.name == team_name))
                    if team_name
                    else None
                )
                candidates = await session.run_sync(load_candidates)
            result = any(
                c.available and (team_id is None or team_id in c.team_ids) for c in candidates
            )
        self._available[channel] = (now, result)
        return result

    async def may_download(self, channel: str, visitor: str, url: str) -> bool:
        """Whether the file at `url` is the visitor's to download: their own upload (even before
        its message is routed), or a file of a message that is not private in one of their
        conversations on the channel (an agent's reply, an email answer threaded in)."""
        found = attachment_id(url)
        if found is None:
            return False
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(
                        StoredFile.channel,
                        StoredFile.external_id,
                        StoredFile.conversation_id,
                        StoredFile.message_id,
                    ).where(StoredFile.id == found)
                )
            ).first()
            if row is None:
                return False
            own = row.channel == channel and row.external_id.startswith(visitor + "/")
            if row.conversation_id is None and own:
                return True
            if row.conversation_id is not None:  # an agent's upload: once sent, not in a note
                if row.message_id is None:
                    return False
                where = Message.id == row.message_id
            else:
                where = (Message.channel == row.channel) & (Message.external_id == row.external_id)
            message = (
                await session.execute(
                    select(Message.conversation_id, Message.private).where(where).limit(1)
                )
            ).first()
            if message is None or message.private:
                return False
            customer_id = await self._customer(session, channel, visitor)
            owner = await session.scalar(
                select(Conversation.customer_id).where(
                    Conversation.id == message.conversation_id, Conversation.channel == channel
                )
            )
        return customer_id is not None and owner == customer_id

    async def conversation(self, channel: str, visitor: str) -> ChatConversation | None:
        """The visitor's latest conversation on the channel, if they have one."""
        async with self._sessions() as session:
            customer_id = await self._customer(session, channel, visitor)
            if customer_id is None:
                return None
            row = (
                await session.execute(
                    select(Conversation.id, Conversation.team_id, Conversation.assignee_id)
                    .where(Conversation.customer_id == customer_id, Conversation.channel == channel)
                    .order_by(Conversation.id.desc())
                    .limit(1)
                )
            ).first()
        return ChatConversation(row.id, row.team_id, row.assignee_id) if row else None

    async def visitor_of(self, conversation_id: int) -> tuple[str, str] | None:
        """The (channel, visitor id) a conversation's replies go to."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(Identity.channel, Identity.external_id)
                    .join(Conversation, Conversation.customer_id == Identity.customer_id)
                    .where(Conversation.id == conversation_id)
                    .where(Identity.channel == Conversation.channel)
                    .order_by(Identity.id)
                    .limit(1)
                )
            ).first()
        return (row.channel, row.external_id) if row else None
