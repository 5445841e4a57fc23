"""The Redis Streams backend of the unified queue: partitioned streams, one owner per partition.

- `publish` hashes the key (crc32) onto one of `partitions` streams, `{prefix}:q:{topic}:{n}`, and
  returns `"{n}:{stream id}"` once XADD has succeeded. Every key this class writes starts with
  the configured prefix. Changing `partitions` moves keys between streams: drain first.
- A partition is read by one consumer at a time: the holder of its lease, `...:{n}:lease` (SET NX
  PX `lease_seconds`, renewed every tick only while it still holds our id). Consumers heartbeat
  into `...:consumers` (a sorted set scored by Redis' own clock) and each holds at most
  ceil(partitions / live consumers); a consumer over its share finishes what it holds in the
  surplus partitions and gives them back, so a newcomer gets its share within a tick or two.
- Every owner reads as the same group consumer, `owner` (consumer groups are per stream, so this
  name is per partition). A new owner therefore first re-reads the previous owner's unacknowledged
  entries (XREADGROUP from id `0`, in stream order), then new ones (`>`). A consumer that dies
  stops renewing; its leases expire and whoever takes a partition next processes what it left
  pending: at-least-once. Entries a lost owner still managed to read after the new owner's `0`
  pass are picked up by a periodic XAUTOCLAIM of pending entries idle for longer than a lease.
- Inside a partition, the owner runs one lane per key: one key's entries one after another in
  stream order, different keys concurrently (at most `concurrency` handlers at a time). An entry
  is acknowledged and deleted from its stream in one transaction after its handler returns, so
  a key's acknowledged entries are always a prefix of its entries, and XLEN is the depth.
- A failed attempt is recorded in `...:{n}:retries` (attempts and the time of the next try, so a
  restarted consumer continues the count); only that key's lane waits for the backoff. After
  `max_attempts` the entry moves to `...:dead` with its error, in the same transaction as its
  acknowledgement, and the lane goes on.
- A consumer that cannot renew a lease for a whole lease period drops that partition at once and
  cancels its handlers; a handler still running past the lease may overlap the next owner's
  first attempt at the same entry (at-least-once: the router dedupes by external id).
- `drain` takes the partitions nobody holds for the length of the call, without joining the
  heartbeat; a key whose retry is not due yet is left pending, with its later entries behind it.
- The lease scripts touch several keys at once: one Redis (or a Sentinel pair), not a Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import re
import socket
import time
import uuid
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from storage.config import QueueConfig
from storage.queue.base import DeadItem, Handler, Item, QueueStats, backoff_seconds

logger = logging.getLogger(__name__)

GROUP = "pishkhan"
OWNER = "owner"
"""The group consumer every partition owner reads as: a new owner's pending entries are exactly
what the previous owner left unacknowledged."""

_REDIS_DOWN = (RedisError, OSError)
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
_CLEANUP_SECONDS = 2.0

_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
end
return redis.call('ZCARD', KEYS[1])
"""

_ACQUIRE = """
local got = {}
for i, key in ipairs(KEYS) do
  if #got >= tonumber(ARGV[3]) then break end
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then table.insert(got, i) end
end
return got
"""

_RENEW = """
local held = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    held[i] = 1
  else
    held[i] = 0
  end
end
return held
"""

_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""

_REQUEUE = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return false end
return redis.call('XADD', KEYS[2], '*', 'key', ARGV[2], 'payload', ARGV[3])
"""


class RedisQueue:
    """The unified queue on Redis Streams; see the module docstring for the design.

    `backoff` (delay before retry n) and `clock` (epoch seconds) are injectable for tests;
    `block_seconds` bounds how long a read waits, and so how soon `consume` notices `stopping`;
    `stop_grace` is how long a stopping consumer lets running handlers finish before cancelling.
    """

    def __init__(
        self,
        client: Redis,
        config: QueueConfig,
        *,
        concurrency: int = 8,
        block_seconds: float = 0.5,
        stop_grace: float = 0.5,
        backoff: Callable[[int], float] = backoff_seconds,
        clock: Callable[[], float] = time.time,
    ) -> None:
        socket_timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        if socket_timeout:
            # redis-py retries a read that outlives the socket timeout, re-sending XREADGROUP.
            block_seconds = min(block_seconds, float(socket_timeout) / 2)
        self._client = client
        self._config = config
        self._concurrency = concurrency
        self._block_seconds = block_seconds
        self._stop_grace = stop_grace
        self._backoff = backoff
        self._clock = clock
        self._stopped = asyncio.Event()
        self._closed = False
        self._consumers: set[_Consumer] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._requeue = client.register_script(_REQUEUE)

    def key(self, topic: str, *parts: object) -> str:
        return ":".join([self._config.prefix, "q", topic, *map(str, parts)])

    def partition_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self._config.partitions

    async def start(self) -> None:
        """Check that Redis answers. Does not consume anything."""
        await self._client.ping()

    async def stop(self) -> None:
        """Make running `consume` calls give their partitions back, then close the client."""
        if self._closed:
            return
        self._closed = True
        self._stopped.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self._block_seconds + self._stop_grace + 2)
        await self._client.aclose()

    async def publish(self, topic: str, key: str, payload: bytes) -> str:
        partition = self.partition_of(key)
        entry_id = await self._client.xadd(
            self.key(topic, partition), {"key": key, "payload": payload}
        )
        return f"{partition}:{_text(entry_id)}"

    async def consume(self, topic: str, handler: Handler, *, stopping: asyncio.Event) -> None:
        consumer = _Consumer(self, topic, handler, draining=False)
        self._consumers.add(consumer)
        self._idle.clear()
        try:
            await consumer.run(stopping)
        finally:
            self._consumers.discard(consumer)
            if not self._consumers:
                self._idle.set()

    async def drain(self, topic: str, handler: Handler) -> int:
        """Process what is in the partitions no running consumer holds, and return how many
        handler calls were made. An entry waiting for its retry is left for later."""
        return await _Consumer(self, topic, handler, draining=True).drain()

    async def stats(self, topic: str) -> QueueStats:
        pipe = self._client.pipeline(transaction=False)
        for partition in range(self._config.partitions):
            pipe.xlen(self.key(topic, partition))
            pipe.xpending(self.key(topic, partition), GROUP)
            pipe.xrange(self.key(topic, partition), "-", "+", count=1)
        pipe.xlen(self.key(topic, "dead"))
        pipe.time()
        replies = await pipe.execute(raise_on_error=False)
        depth = sum(int(reply) for reply in replies[:-2:3] if isinstance(reply, int))
        pending = sum(_pending_count(reply) for reply in replies[1:-2:3])
        # An entry's id starts with the Redis clock's milliseconds when it was added.
        oldest = [
            int(_text(reply[0][0]).split("-")[0])
            for reply in replies[2:-2:3]
            if isinstance(reply, list) and reply
        ]
        dead = replies[-2] if isinstance(replies[-2], int) else 0
        now = replies[-1]
        now_ms = int(now[0]) * 1000 + int(now[1]) // 1000 if isinstance(now, tuple | list) else 0
        lag = max(0.0, (now_ms - min(oldest)) / 1000) if oldest and now_ms else 0.0
        return QueueStats(depth=depth, pending=pending, dead=dead, lag_seconds=lag)

    async def dead_letters(self, topic: str, *, limit: int = 100) -> list[DeadItem]:
        rows = await self._client.xrevrange(self.key(topic, "dead"), "+", "-", count=limit)
        return [
            DeadItem(
                id=_text(entry_id),
                topic=topic,
                key=_text(_field(fields, "key")),
                payload=_bytes(_field(fields, "payload")),
                error=_text(_field(fields, "error")),
                attempts=int(_field(fields, "attempts")),
            )
            for entry_id, fields in rows or []
        ]

    async def requeue_dead(self, topic: str, dead_id: str) -> bool:
        if not _STREAM_ID.fullmatch(dead_id):
            return False
        dead = self.key(topic, "dead")
        rows = await self._client.xrange(dead, dead_id, dead_id)
        if not rows:
            return False
        key = _text(_field(rows[0][1], "key"))
        payload = _bytes(_field(rows[0][1], "payload"))
        # One script, so two admins retrying the same dead letter requeue it once.
        added = await self._requeue(
            keys=[dead, self.key(topic, self.partition_of(key))], args=[dead_id, key, payload]
        )
        return added is not None

    async def owners(self, topic: str) -> dict[int, str]:
        """Which consumer holds each partition now (operators, tests); free ones are left out."""
        leases = [self.key(topic, n, "lease") for n in range(self._config.partitions)]
        values = await self._client.mget(leases)
        return {n: _text(value) for n, value in enumerate(values) if value is not None}

    async def _ensure_group(self, stream: str) -> None:
        try:
            await self._client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


@dataclass(slots=True)
class _Entry:
    id: str
    key: str
    payload: bytes
    attempts: int = 0
    retry_at: float = 0.0


@dataclass(eq=False)
class _Partition:
    index: int
    stream: str
    lease: str
    retries: str
    valid_until: float
    """time.monotonic() after which the lease may have passed to someone else."""
    ready: bool = False
    """Pending entries of the previous owner are read; new ones may follow."""
    lanes: dict[str, deque[_Entry]] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    parked: set[str] = field(default_factory=set)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def usable(self) -> bool:
        return not self.closing.is_set() and time.monotonic() < self.valid_until


class _Consumer:
    """One `consume` or `drain` call: the partitions it holds and the lanes working on them."""

    def __init__(self, queue: RedisQueue, topic: str, handler: Handler, *, draining: bool) -> None:
        self.queue = queue
        self.client = queue._client
        self.config = queue._config
        self.topic = topic
        self.handler = handler
        self.draining = draining
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.parts: dict[int, _Partition] = {}
        self.slots = asyncio.Semaphore(queue._concurrency)
        self.progress = asyncio.Event()
        self.handled = 0
        self.lease_ms = int(self.config.lease_seconds * 1000)
        self.tick_seconds = min(1.0, self.config.lease_seconds / 3)
        self.next_sweep = time.monotonic() + self.config.lease_seconds
        self.background: set[asyncio.Task[None]] = set()
        self.not_reading = asyncio.Event()
        """Clear while an XREADGROUP is in flight: a lease is given back only when it is set."""
        self.not_reading.set()

    # -- the two modes ---------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        grace = self.queue._stop_grace
        next_tick = 0.0
        try:
            while not (stopping.is_set() or self.queue._stopped.is_set()):
                try:
                    if time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + self.tick_seconds
                        await self._tick()
                    block = min(self.queue._block_seconds, next_tick - time.monotonic())
                    if await self._read(block=max(0.001, block)) is None:
                        self.progress.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.progress.wait(), max(0.001, block))
                except _REDIS_DOWN as exc:
                    if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                        for part in self.parts.values():  # the stream was deleted under us
                            part.ready = False
                    logger.warning("queue %s: %s; trying again", self.topic, exc)
                    await asyncio.sleep(self.tick_seconds)
        except asyncio.CancelledError:
            grace = 0.0
            raise
        finally:
            await self._close(grace=grace, registered=True)

    async def drain(self) -> int:
        renewing = asyncio.create_task(self._keep_leases(), name=f"redis-queue-{self.topic}-leases")
        try:
            await self._acquire(self.config.partitions)
            while True:
                if await self._read(block=None):
                    continue
                lanes = [task for part in self.parts.values() for task in part.tasks.values()]
                if not lanes:
                    break
                await asyncio.wait(lanes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            await self._close(grace=0.0, registered=False)
        return self.handled

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            try:
                await self._renew()
            except _REDIS_DOWN as exc:
                logger.warning("queue %s: renewing leases failed: %s", self.topic, exc)

    # -- partitions ------------------------------------------------------------------------------

    async def _tick(self) -> None:
        live = await self.queue._heartbeat(
            keys=[self.queue.key(self.topic, "consumers")], args=[self.id, self.lease_ms, 0]
        )
        share = math.ceil(self.config.partitions / max(1, int(live)))
        await self._renew()
        for part in list(self.parts.values()):
            if not part.ready and part.usable():
                await self._load_pending(part)
            self._revive(part)
        active = [part for part in self.parts.values() if not part.closing.is_set()]
        if len(active) > share:
            for part in sorted(active, key=lambda p: len(p.known))[: len(active) - share]:
                self._spawn(self._release(part, grace=None), f"release-{part.index}")
        elif len(active) < share:
            await self._acquire(share - len(active))
        if time.monotonic() >= self.next_sweep:
            self.next_sweep = time.monotonic() + self.config.lease_seconds
            await self._sweep()

    async def _acquire(self, wanted: int) -> None:
        count = self.config.partitions
        start = zlib.crc32(self.id.encode()) % count  # consumers start at different places
        candidates = [n for n in ((start + i) % count for i in range(count)) if n not in self.parts]
        if not candidates:
            return
        started = time.monotonic()
        got = await self.queue._acquire(
            keys=[self.queue.key(self.topic, n, "lease") for n in candidates],
            args=[self.id, self.lease_ms, wanted],
        )
        for position in got:
            index = candidates[int(position) - 1]
            part = _Partition(
                index=index,
                stream=self.queue.key(self.topic, index),
                lease=self.queue.key(self.topic, index, "lease"),
                retries=self.queue.key(self.topic, index, "retries"),
                valid_until=started + self.config.lease_seconds,
            )
            self.parts[index] = part
        for part in list(self.parts.values()):
            if not part.ready:
                await self._load_pending(part)

    async def _load_pending(self, part: _Partition) -> None:
        """Read what the previous owner left unacknowledged, in stream order, before new ones."""
        await self.queue._ensure_group(part.stream)
        after = "0"
        while True:
            reply = await self.client.xreadgroup(
                GROUP, OWNER, {part.stream: after}, count=self.config.batch_size
            )
            rows = [row for _, stream_rows in _streams(reply) for row in stream_rows]
            if not rows:
                break
            after = _text(rows[-1][0])
            entries, gone = _entries(rows)
            if gone:
                await self.client.xack(part.stream, GROUP, *gone)
            await self._load_retries(part, entries)
            self._dispatch(part, entries)
        part.ready = True

    async def _load_retries(self, part: _Partition, entries: list[_Entry]) -> None:
        if not entries:
            return
        values = await self.client.hmget(part.retries, [entry.id for entry in entries])
        for entry, value in zip(entries, values, strict=True):
            if value is not None:
                attempts, retry_at = _text(value).split()
                entry.attempts, entry.retry_at = int(attempts), float(retry_at)

    async def _renew(self) -> None:
        held = list(self.parts.values())
        if not held:
            return
        started = time.monotonic()
        try:
            flags = await self.queue._renew(
                keys=[part.lease for part in held], args=[self.id, self.lease_ms]
            )
        except _REDIS_DOWN:
            for part in held:
                if started >= part.valid_until:
                    self._lose(part)
            raise
        for part, flag in zip(held, flags, strict=True):
            if int(flag):
                part.valid_until = started + self.config.lease_seconds
            else:
                self._lose(part)

    def _lose(self, part: _Partition) -> None:
        logger.warning(
            "queue %s: lost the lease on %s; its entries go to the next owner",
            self.topic,
            part.stream,
        )
        part.closing.set()
        for task in list(part.tasks.values()):
            task.cancel()
            self.background.add(task)
        if self.parts.get(part.index) is part:
            del self.parts[part.index]

    async def _release(self, part: _Partition, *, grace: float | None) -> None:
        """Stop taking entries from `part`, let running handlers finish (for `grace` seconds, or
        for as long as they take), then give the lease back."""
        part.closing.set()
        tasks = list(part.tasks.values())
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=grace)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # A read that began before `closing` may still deliver this partition's entries to the
        # owner's pending list. Giving the lease back before it returns would let the next owner
        # finish its `0` pass first and read later entries of the same key with `>`: out of order.
        await self.not_reading.wait()
        try:
            await asyncio.wait_for(
                self.queue._release(keys=[part.lease], args=[self.id]), _CLEANUP_SECONDS
            )
        except (*_REDIS_DOWN, TimeoutError) as exc:
            logger.warning(
                "queue %s: could not release %s (%s); it expires by itself",
                self.topic,
                part.lease,
                exc,
            )
        finally:
            if self.parts.get(part.index) is part:
                del self.parts[part.index]

    async def _sweep(self) -> None:
        """Take back pending entries no lane knows of (read by a previous owner after our `0`
        pass) once they have been idle for a lease."""
        for part in list(self.parts.values()):
            if not (part.ready and part.usable()):
                continue
            cursor = "0-0"
            while True:
                reply = await self.client.xautoclaim(
                    part.stream, GROUP, OWNER, self.lease_ms, cursor, count=self.config.batch_size
                )
                cursor = _text(reply[0])
                entries, _ = _entries(reply[1])
                fresh = [entry for entry in entries if entry.id not in part.known]
                if fresh:
                    logger.warning(
                        "queue %s: recovered %d stranded entries in %s",
                        self.topic,
                        len(fresh),
                        part.stream,
                    )
                    await self._load_retries(part, fresh)
                    self._dispatch(part, fresh)
                if cursor == "0-0":
                    break

    async def _close(self, *, grace: float, registered: bool) -> None:
        releases = [self._release(part, grace=grace) for part in list(self.parts.values())]
        await asyncio.gather(*releases, return_exceptions=True)
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        if registered:
            with contextlib.suppress(*_REDIS_DOWN, TimeoutError):
                await asyncio.wait_for(
                    self.queue._heartbeat(
                        keys=[self.queue.key(self.topic, "consumers")],
                        args=[self.id, self.lease_ms, 1],
                    ),
                    _CLEANUP_SECONDS,
                )

    def _revive(self, part: _Partition) -> None:
        """Restart lanes that stopped with entries left (a late renewal, Redis away a while)."""
        if not part.usable():
            return
        for key, lane in part.lanes.items():
            if lane and key not in part.tasks:
                part.tasks[key] = asyncio.create_task(
                    self._lane(part, key), name=f"redis-queue-{self.topic}-{part.index}-lane"
                )

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(f"redis-queue-{self.topic}-{name}")
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # -- entries ---------------------------------------------------------------------------------

    async def _read(self, *, block: float | None) -> int | None:
        """Read new entries from the partitions with room in their buffers and hand them to
        lanes; returns how many were read (parked keys' entries are read and left pending), or
        None when no partition can take more. `block=None` does not wait."""
        room = self.config.batch_size
        readable = [
            p for p in self.parts.values() if p.ready and p.usable() and len(p.known) < room
        ]
        if not readable:
            return None
        self.not_reading.clear()
        try:
            reply = await self.client.xreadgroup(
                GROUP,
                OWNER,
                {part.stream: ">" for part in readable},
                count=room - max(len(part.known) for part in readable),
                block=None if block is None else max(1, int(block * 1000)),
            )
        finally:
            self.not_reading.set()
        by_stream = {part.stream: part for part in readable}
        read = 0
        for stream, rows in _streams(reply):
            read += len(rows)
            part = by_stream[stream]
            if self.parts.get(part.index) is part and not part.closing.is_set():
                self._dispatch(part, _entries(rows)[0])
            # otherwise they stay pending, and the partition's next owner reads them from `0`
        return read

    def _dispatch(self, part: _Partition, entries: list[_Entry]) -> None:
        for entry in entries:
            if entry.id in part.known or entry.key in part.parked:
                continue  # a parked key's later entries must wait behind its retry
            part.known.add(entry.id)
            part.lanes.setdefault(entry.key, deque()).append(entry)
            if entry.key not in part.tasks:
                part.tasks[entry.key] = asyncio.create_task(
                    self._lane(part, entry.key), name=f"redis-queue-{self.topic}-{part.index}-lane"
                )

    async def _lane(self, part: _Partition, key: str) -> None:
        """Process one key's entries in order until none is left or the partition goes."""
        lane = part.lanes[key]
        try:
            while lane and not part.closing.is_set():
                entry = lane[0]
                delay = entry.retry_at - self.queue._clock()
                if delay > 0:
                    if self.draining:  # not due yet: leave it, and this key, for later
                        part.parked.add(key)
                        part.known.difference_update(e.id for e in lane)
                        lane.clear()
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(part.closing.wait(), delay)
                    continue
                async with self.slots:
                    if not part.usable():
                        break
                    error = await self._call(part, entry)
                if error is None:
                    settle = functools.partial(self._ack, part, entry)
                elif entry.attempts + 1 >= self.config.max_attempts:
                    settle = functools.partial(self._bury, part, entry, error)
                else:
                    if not await self._persist(
                        part, functools.partial(self._postpone, part, entry)
                    ):
                        break
                    continue
                if not await self._persist(part, settle):
                    break
                lane.popleft()
                part.known.discard(entry.id)
                self.progress.set()
        finally:
            part.tasks.pop(key, None)
            if not lane:
                part.lanes.pop(key, None)

    async def _call(self, part: _Partition, entry: _Entry) -> str | None:
        self.handled += 1
        item = Item(
            id=f"{part.index}:{entry.id}",
            topic=self.topic,
            key=entry.key,
            payload=entry.payload,
            attempts=entry.attempts,
        )
        try:
            await self.handler(item)
        except Exception as exc:
            logger.exception("queue item %s (key %s) failed", item.id, item.key)
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _persist(self, part: _Partition, write: Callable[[], Awaitable[None]]) -> bool:
        """Write an outcome, retrying while Redis is away; False once the partition is gone."""
        while True:
            try:
                await write()
                return True
            except _REDIS_DOWN as exc:
                if not part.usable():
                    return False
                logger.warning("queue %s: recording an outcome failed: %s", self.topic, exc)
                await asyncio.sleep(0.2)

    async def _ack(self, part: _Partition, entry: _Entry) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(part.stream, GROUP, entry.id)
        pipe.xdel(part.stream, entry.id)
        if entry.attempts:
            pipe.hdel(part.retries, entry.id)
        await pipe.execute()

    async def _postpone(self, part: _Partition, entry: _Entry) -> None:
        attempts = entry.attempts + 1
        retry_at = self.queue._clock() + self.queue._backoff(attempts)
        await self.client.hset(part.retries, entry.id, f"{attempts} {retry_at!r}")
        entry.attempts, entry.retry_at = attempts, retry_at

    async def _bury(self, part: _Partition, entry: _Entry, error: str) -> None:
        attempts = entry.attempts + 1
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(
            self.queue.key(self.topic, "dead"),
            {
                "id": f"{part.index}:{entry.id}",
                "key": entry.key,
                "payload": entry.payload,
                "error": error,
                "attempts": attempts,
            },
        )
        pipe.xack(part.stream, GROUP, entry.id)
        pipe.xdel(part.stream, entry.id)
        pipe.hdel(part.retries, entry.id)
        await pipe.execute()
        logger.error(
            "queue item %s:%s dead-lettered after %d attempts", part.index, entry.id, attempts
        )


# -- reply shapes (bytes or str, RESP2 or RESP3) ---------------------------------------------------


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _field(fields: Mapping[Any, Any] | None, name: str) -> Any:
    if fields is None:
        raise KeyError(name)
    value = fields.get(name.encode())
    return fields.get(name) if value is None else value


def _streams(reply: Any) -> list[tuple[str, list[Any]]]:
    """XREADGROUP's reply as (stream, rows): a list of pairs in RESP2, a mapping in RESP3."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, Mapping) else ((s, rows) for s, rows in reply)
    result = []
    for stream, rows in pairs:
        if rows and isinstance(rows[0], list):  # RESP3 wraps the rows once more
            rows = rows[0]
        result.append((_text(stream), list(rows)))
    return result


def _entries(rows: list[Any]) -> tuple[list[_Entry], list[str]]:
    """Entries, and the ids of pending entries whose data was deleted."""
    entries: list[_Entry] = []
    gone: list[str] = []
    for entry_id, fields in rows:
        if not fields:
            gone.append(_text(entry_id))
            continue
        entries.append(
            _Entry(
                id=_text(entry_id),
                key=_text(_field(fields, "key")),
                payload=_bytes(_field(fields, "payload")),
            )
        )
    return entries, gone


def _pending_count(reply: Any) -> int:
    if isinstance(reply, Mapping):
        return int(reply.get("pending", 0))
    if isinstance(reply, list) and reply:
        return int(reply[0])
    return 0
