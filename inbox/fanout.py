"""Events between processes at scale: every process publishes what its units of work
committed to one Redis pub/sub channel, and every web process hands what the others published
to its own listeners (the agents' event streams, the website chat).

Pub/sub does not keep what nobody received: after a lost connection the web process ends its
agents' streams, which reconnect with `since=` and catch up from the event log — the log, not
Redis, is the record."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from routing.events import Published

logger = logging.getLogger(__name__)

Listener = Callable[[Sequence[Published]], Awaitable[None]]
_DOWN = (RedisError, OSError)
RETRY_SECONDS = 1.0


class RedisFanout:
    def __init__(
        self, client: Redis, channel: str, *, on_state: Callable[[bool], None] | None = None
    ) -> None:
        """`on_state` hears whether events from other processes are arriving (a gauge)."""
        self._client = client
        self.channel = channel
        self.origin = secrets.token_hex(8)
        """This process: what it published itself it has already handed to its listeners."""
        self.connected = asyncio.Event()
        self._on_state = on_state or (lambda _connected: None)
        self._sending: set[asyncio.Task[None]] = set()

    async def publish(self, events: Sequence[Published]) -> None:
        """An event listener: send the committed events to the other processes. If Redis is
        down they are not lost (they are in the log); streams catch up on reconnect."""
        if not events:
            return
        payload = json.dumps(
            {"origin": self.origin, "events": [e.to_wire() for e in events]},
            ensure_ascii=False,
        )
        try:
            await self._client.publish(self.channel, payload)
        except _DOWN as exc:
            logger.warning("events not sent to other processes (%s); they catch up", exc)

    def signal(self, message: dict[str, Any]) -> None:
        """Send an ephemeral signal (who views or types where) to the other processes, in a
        task of its own: signals come from synchronous code, and losing one is harmless."""
        payload = json.dumps({"origin": self.origin, "signal": message}, ensure_ascii=False)

        async def send() -> None:
            with contextlib.suppress(*_DOWN):
                await self._client.publish(self.channel, payload)

        task = asyncio.ensure_future(send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def run(
        self,
        listeners: Sequence[Listener],
        stopping: asyncio.Event,
        on_gap: Callable[[], int],
        on_signal: Callable[[dict[str, Any], str], None] | None = None,
    ) -> None:
        """Hand other processes' events to `listeners` and their signals to `on_signal(message,
        origin)` until `stopping`; after a lost connection call `on_gap()` (end the streams,
        which then catch up from the log)."""
        first = True
        while not stopping.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if not first:
                    on_gap()
                first = False
                self.connected.set()
                self._on_state(True)
                while not stopping.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        await self._hand_over(message.get("data"), listeners, on_signal)
            except _DOWN as exc:
                self.connected.clear()
                self._on_state(False)
                logger.warning("event fan-out lost Redis (%s); reconnecting", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), RETRY_SECONDS)
            finally:
                with contextlib.suppress(*_DOWN, RuntimeError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _hand_over(
        self,
        data: object,
        listeners: Sequence[Listener],
        on_signal: Callable[[dict[str, Any], str], None] | None,
    ) -> None:
        try:
            decoded = json.loads(data)  # type: ignore[arg-type]
            origin = str(decoded.get("origin"))
            if origin == self.origin:
                return
            if "signal" in decoded:
                if on_signal is not None and isinstance(decoded["signal"], dict):
                    on_signal(decoded["signal"], origin)
                return
            events = [Published.from_wire(e) for e in decoded["events"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("ignored a malformed fan-out message: %s", exc)
            return
        for listener in listeners:
            try:
                await listener(events)
            except Exception:
                logger.exception("an event listener failed; events are still in the log")
