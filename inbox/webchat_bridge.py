"""Between the website chat channels and the rest: answers what they ask of the database (through
`routing.visitors`) and turns committed events and agents' typing into what their visitors see."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from channels.base import Channel, ChatHistory, ChatSignal, FollowsConversations
from inbox.realtime import Hub
from routing.events import Published
from routing.visitors import Visitors

logger = logging.getLogger(__name__)

CACHE_SIZE = 10_000


class WebchatBridge:
    """Implements `channels.base.ChatBackend` for every chat channel, and is a runtime event
    listener (`publish`) that forwards status changes to the conversation's visitor."""

    def __init__(self, visitors: Visitors, hub: Hub, channels: Mapping[str, Channel]) -> None:
        self._visitors = visitors
        self._hub = hub
        self._chats: dict[str, FollowsConversations] = {
            name: channel
            for name, channel in channels.items()
            if isinstance(channel, FollowsConversations)
        }
        self._owners: OrderedDict[int, tuple[str, str] | None] = OrderedDict()
        """Conversation id → (channel, visitor); `None` for a conversation on another channel."""
        self._tasks: set[asyncio.Task[None]] = set()
        for chat in self._chats.values():
            chat.use_chats(self)
        if self._chats:
            hub.on_typing = self._agent_typing

    # ChatBackend -----------------------------------------------------------------------------

    async def history(self, channel: str, visitor: str, *, after: int, limit: int) -> ChatHistory:
        return await self._visitors.history(channel, visitor, after=after, limit=limit)

    async def read_upto(self, channel: str, visitors: Sequence[str]) -> Mapping[str, str]:
        return await self._visitors.read_upto(channel, visitors)

    async def available(self, channel: str) -> bool:
        return await self._visitors.available(channel)

    async def may_download(self, channel: str, visitor: str, url: str) -> bool:
        return await self._visitors.may_download(channel, visitor, url)

    async def visitor_typing(self, channel: str, visitor: str) -> None:
        conversation = await self._visitors.conversation(channel, visitor)
        if conversation is not None:
            self._hub.tell(
                conversation.id,
                {"type": "customer_typing"},
                team_id=conversation.team_id,
                assignee_id=conversation.assignee_id,
            )

    # Events from above -----------------------------------------------------------------------

    async def publish(self, events: Sequence[Published]) -> None:
        for event in events:
            if event.type != "conversation.status_changed" or event.conversation_id is None:
                continue
            summary = event.data.get("conversation")
            if isinstance(summary, dict) and summary.get("channel") not in self._chats:
                continue
            owner = await self._owner(event.conversation_id)
            if owner is not None:
                channel, visitor = owner
                status = str(event.data.get("to", ""))
                self._chats[channel].follow(ChatSignal(channel, visitor, "status", status))

    def _agent_typing(self, conversation_id: int, agent_name: str) -> None:
        """The hub's hook is synchronous; the lookup runs as a task (cached after the first)."""
        if conversation_id in self._owners:
            self._typing(self._owners[conversation_id], agent_name)
            return
        task = asyncio.create_task(
            self._lookup_typing(conversation_id, agent_name), name="webchat-typing"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lookup_typing(self, conversation_id: int, agent_name: str) -> None:
        try:
            self._typing(await self._owner(conversation_id), agent_name)
        except Exception:
            logger.exception("webchat: looking up conversation %s failed", conversation_id)

    def _typing(self, owner: tuple[str, str] | None, agent_name: str) -> None:
        if owner is not None:
            channel, visitor = owner
            self._chats[channel].follow(ChatSignal(channel, visitor, "typing", agent_name))

    async def _owner(self, conversation_id: int) -> tuple[str, str] | None:
        if conversation_id in self._owners:
            self._owners.move_to_end(conversation_id)
            return self._owners[conversation_id]
        found = await self._visitors.visitor_of(conversation_id)
        owner = found if found is not None and found[0] in self._chats else None
        self._owners[conversation_id] = owner
        if len(self._owners) > CACHE_SIZE:
            self._owners.popitem(last=False)
        return owner
