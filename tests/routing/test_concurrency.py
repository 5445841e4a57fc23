"""Two router consumers on Redis processing a burst from the same few senders never create
duplicate customers or conversations, and keep each sender's order."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict

from redis.asyncio import Redis
from sqlalchemy import func, select

import routing.events
from channels.base import Inbound, Sender
from routing.config import RoutingConfig
from routing.router import INBOUND_TOPIC, Router
from storage.config import QueueConfig
from storage.db import SessionFactory
from storage.models import ContactPoint, Conversation, Customer, Identity, Message
from storage.queue import Handler, Item
from storage.queue.redis import RedisQueue
from tests.fixtures.services import REDIS_URL

PER_SENDER = 60
SENDERS = {
    # (channel, external id) -> the person behind it; alice and bob write on two channels
    ("webform", "alice@example.com"): (
        "alice",
        Sender("alice@example.com", "Alice", "alice@example.com"),
    ),
    ("telegram", "1001"): ("alice", Sender("1001", "Alice T", "Alice@Example.com")),
    ("webform", "bob@example.com"): ("bob", Sender("bob@example.com", "Bob", "bob@example.com")),
    ("api", "bob-42"): ("bob", Sender("bob-42", "Bob", "bob@example.com")),
    ("telegram", "2002"): ("carol", Sender("2002", "Carol")),
}


async def test_two_routers_on_redis_keep_people_conversations_and_order(
    sessions: SessionFactory, redis_prefix: str
) -> None:
    config = QueueConfig(url=REDIS_URL, prefix=redis_prefix, lease_seconds=1.0)
    queues = [RedisQueue(Redis.from_url(REDIS_URL), config) for _ in range(2)]
    routers = [
        Router(sessions, RoutingConfig(), channel_teams={}, notify=routing.events.ignore)
        for _ in range(2)
    ]
    handled = [0, 0]

    def counting(n: int) -> Handler:
        async def handle(item: Item) -> None:
            await routers[n].handle(item)
            handled[n] += 1

        return handle

    stopping = asyncio.Event()
    for queue, router in zip(queues, routers, strict=True):
        await queue.start()
        await router.start()
    consumers = [
        asyncio.create_task(
            queue.consume(INBOUND_TOPIC, counting(n), stopping=stopping),
            name=f"router-consumer-{n}",
        )
        for n, queue in enumerate(queues)
    ]
    try:
        # both hold their share of the partitions before the burst arrives
        deadline = time.monotonic() + 10
        while sorted(Counter((await queues[0].owners(INBOUND_TOPIC)).values()).values()) != [8, 8]:
            assert time.monotonic() < deadline, "the consumers never shared the partitions"
            await asyncio.sleep(0.05)

        published: dict[tuple[str, str], list[str]] = defaultdict(list)

        async def burst(n: int, channel: str, sender: Sender) -> None:
            for i in range(PER_SENDER):
                inbound = Inbound(
                    channel=channel,
                    external_id=f"{channel}-{sender.external_id}-{i}",
                    sender=sender,
                    text=f"message {i} from {sender.name}",
                )
                await queues[(n + i) % 2].publish(
                    INBOUND_TOPIC, inbound.order_key, inbound.to_json()
                )
                published[channel, sender.external_id].append(inbound.external_id)

        await asyncio.gather(
            *(
                burst(n, channel, sender)
                for n, ((channel, _), (_, sender)) in enumerate(SENDERS.items())
            )
        )
        total = PER_SENDER * len(SENDERS)
        deadline = time.monotonic() + 40
        while True:
            async with sessions() as session:
                stored = await session.scalar(select(func.count()).select_from(Message))
            stats = await queues[0].stats(INBOUND_TOPIC)
            if stored == total and stats.depth == 0:
                break
            assert time.monotonic() < deadline, f"{stored}/{total} stored, {stats}"
            await asyncio.sleep(0.05)
    finally:
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*consumers), 10)
        for queue in queues:
            await queue.stop()

    assert all(handled), f"both routers should have routed messages: {handled}"
    assert sum(handled) == total
    async with sessions() as session:
        customers = (await session.scalars(select(Customer))).all()
        identities = {
            (i.channel, i.external_id): i.customer_id
            for i in (await session.scalars(select(Identity))).all()
        }
        points = {
            p.value: p.customer_id for p in (await session.scalars(select(ContactPoint))).all()
        }
        conversations = (await session.scalars(select(Conversation))).all()
        messages = (await session.scalars(select(Message).order_by(Message.id))).all()

    # exactly one customer per person, whichever channel they wrote on
    assert set(identities) == set(SENDERS)
    person_of_customer: dict[int, set[str]] = defaultdict(set)
    for address, (person, _) in SENDERS.items():
        person_of_customer[identities[address]].add(person)
    assert sorted(map(sorted, person_of_customer.values())) == [["alice"], ["bob"], ["carol"]]
    assert len(customers) == 3
    customer_of = {person: cid for cid, (person,) in person_of_customer.items()}
    assert points == {
        "alice@example.com": customer_of["alice"],
        "bob@example.com": customer_of["bob"],
    }

    # one open conversation per (customer, channel)
    pairs = Counter((c.customer_id, c.channel) for c in conversations)
    expected_pairs = {(identities[address], address[0]) for address in SENDERS}
    assert set(pairs) == expected_pairs
    assert all(count == 1 for count in pairs.values()), pairs
    assert all(c.status == "open" for c in conversations)

    # every message stored once, in its sender's conversation, in publish order
    assert len(messages) == total
    assert len({(m.channel, m.external_id) for m in messages}) == total
    conversation_of = {(c.customer_id, c.channel): c.id for c in conversations}
    stored_order: dict[tuple[str, str], list[str]] = defaultdict(list)
    for message in messages:
        assert message.external_id is not None
        channel, _, rest = message.external_id.partition("-")
        sender_id = rest.rsplit("-", 1)[0]
        assert message.conversation_id == conversation_of[identities[channel, sender_id], channel]
        stored_order[channel, sender_id].append(message.external_id)
    assert stored_order == published
