"""The Deliverer hands a reply's files to the channel (name, type, size and a URL the blob store
resolves), and a channel with no way to send files fails the reply clearly instead of sending
the text alone — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from channels.base import (
    Attachment,
    BlobStore,
    CursorStore,
    Delivery,
    Emit,
    Outbound,
    Route,
    StoresFiles,
)
from routing.actions import OUTBOUND_TOPIC, Actions
from routing.events import Published
from routing.outbound import Deliverer
from storage.blobs import NewUpload, SqlBlobStore
from storage.db import SessionFactory
from storage.models import Agent, Conversation, Customer, Identity, Message
from storage.work import UnitOfWork

PDF = b"%PDF-1.4\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0" + bytes(100)


class TextOnly:
    """A channel that sends text and nothing else (no blob store to read files through)."""

    type = "fake"

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Outbound] = []
        self.blobs: BlobStore | None = None

    async def start(self, emit: Emit, cursors: CursorStore) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: Outbound) -> Delivery:
        self.sent.append(message)
        return Delivery(external_id=f"p-{message.message_id}")

    def routes(self) -> Sequence[Route]:
        return []

    def status(self) -> Mapping[str, Any]:
        return {}


class WithFiles(TextOnly):
    """A channel that sends files: it reads their bytes through the blob store it is given."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.files: list[tuple[str, str, bytes]] = []

    def use_blobs(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    async def send(self, message: Outbound) -> Delivery:
        assert self.blobs is not None
        for attachment in message.attachments:
            blob = await self.blobs.get(attachment.url)
            assert blob is not None
            self.files.append((blob.filename, blob.content_type, blob.data))
        return await super().send(message)


@dataclass
class Recorded:
    """The outbound queue as the Actions see it: what they published."""

    entries: list[bytes] = field(default_factory=list)

    async def publish(self, topic: str, key: str, payload: bytes) -> str:
        assert topic == OUTBOUND_TOPIC
        self.entries.append(payload)
        return str(len(self.entries))


@dataclass
class World:
    sessions: SessionFactory
    actions: Actions
    blobs: SqlBlobStore
    agent_id: int
    events: list[Published]

    async def record(self, published: Sequence[Published]) -> None:
        self.events.extend(published)

    async def conversation(self, channel: str) -> int:
        async with self.sessions.begin() as session:
            customer = Customer(name="مریم")
            session.add(customer)
            await session.flush()
            session.add(
                Identity(customer_id=customer.id, channel=channel, external_id="m@example.com")
            )
            conversation = Conversation(customer_id=customer.id, channel=channel, subject="سفارش")
            session.add(conversation)
            await session.flush()
            return conversation.id

    async def reply_with_files(self, conversation_id: int) -> Message:
        uploads = await self.blobs.put_uploads(
            [
                NewUpload(PDF, "رسید خرید.pdf", "application/pdf"),
                NewUpload(JPEG, "عکس.jpg", "image/jpeg"),
            ],
            conversation_id=conversation_id,
            agent_id=self.agent_id,
        )
        return await self.actions.reply(
            conversation_id,
            self.agent_id,
            "پیوست‌ها را ببینید",
            attachments=[u.id for u in uploads],
        )


@pytest.fixture
async def world(sessions: SessionFactory) -> AsyncIterator[World]:
    events: list[Published] = []

    async def record(published: Sequence[Published]) -> None:
        events.extend(published)

    async with sessions.begin() as session:
        agent = Agent(email="sara@example.com", name="سارا", password_hash="x")
        session.add(agent)
        await session.flush()
        agent_id = agent.id
    work = UnitOfWork.for_sessions(sessions)
    actions = Actions(sessions, Recorded(), record, work=work)  # type: ignore[arg-type]
    yield World(sessions, actions, SqlBlobStore(sessions), agent_id, events)
    await work.close()


async def test_the_outbound_carries_the_files_and_the_channel_reads_their_bytes(
    world: World,
) -> None:
    channel = WithFiles("mail")
    assert isinstance(channel, StoresFiles)
    channel.use_blobs(world.blobs)
    conversation_id = await world.conversation("mail")
    message = await world.reply_with_files(conversation_id)
    deliverer = Deliverer(world.sessions, {"mail": channel}, world.record)

    assert await deliverer.deliver(message.id) == "sent"
    [outbound] = channel.sent
    assert [(a.filename, a.content_type, a.size) for a in outbound.attachments] == [
        ("رسید خرید.pdf", "application/pdf", len(PDF)),
        ("عکس.jpg", "image/jpeg", len(JPEG)),
    ]
    assert all(isinstance(a, Attachment) for a in outbound.attachments)
    assert all(a.url.startswith("/api/v1/attachments/") for a in outbound.attachments)
    assert channel.files == [
        ("رسید خرید.pdf", "application/pdf", PDF),
        ("عکس.jpg", "image/jpeg", JPEG),
    ]
    assert outbound.text == "پیوست‌ها را ببینید"


async def test_a_channel_that_cannot_send_files_fails_the_reply_clearly(world: World) -> None:
    channel = TextOnly("crm")
    conversation_id = await world.conversation("crm")
    message = await world.reply_with_files(conversation_id)
    deliverer = Deliverer(world.sessions, {"crm": channel}, world.record)

    assert await deliverer.deliver(message.id) == "failed"
    assert channel.sent == []  # not the text alone: the agent would think the files went
    async with world.sessions() as session:
        stored = await session.get(Message, message.id)
        assert stored is not None
        assert stored.delivery_status == "failed"
        assert stored.delivery_error is not None
        assert "'crm' cannot send attachments" in stored.delivery_error

    # the same channel still sends replies without files
    plain = await world.actions.reply(conversation_id, world.agent_id, "فقط متن")
    assert await deliverer.deliver(plain.id) == "sent"
    assert [m.attachments for m in channel.sent] == [()]
