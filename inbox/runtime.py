"""The composition root: builds every part from the config, starts them bottom-up and stops them
top-down (stop intake, drain, close channels, dispose the engine)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web
from prometheus_client import Gauge
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from channels.base import Channel, Emit, HoldsConnections, Inbound, Polls, StoresFiles
from channels.registry import build_channel
from channels.webchat_limits import MessageLimit, SharedLimits
from inbox.accounts import create_agent
from inbox.app import create_app, create_ops_app
from inbox.config import Config
from inbox.fanout import RedisFanout
from inbox.login_limiter import RedisLoginLimiter
from inbox.metrics import Metrics
from inbox.realtime import MISSED, REMOTE_ROOM_SECONDS, Hub
from inbox.services import Services
from inbox.webchat_bridge import WebchatBridge
from routing.actions import OUTBOUND_TOPIC, Actions
from routing.bot_turns import button_channels
from routing.events import REACTIONS, Published
from routing.outbound import Deliverer, DeliverySweep, queue_marked_deliveries
from routing.reactions import build_reactions
from routing.router import INBOUND_TOPIC, Router
from routing.visitors import Visitors
from storage.blobs import SqlBlobStore
from storage.config import QueueConfig
from storage.cursors import SqlCursorStore
from storage.db import SessionFactory, create_engine, session_factory
from storage.leases import Leadership, RedisLease
from storage.migrate import upgrade
from storage.models import Agent
from storage.queue import Handled, Handler, Item, Queue
from storage.queue.sql import InTransaction, SqlQueue
from storage.rate_limits import RedisWindow
from storage.work import UnitOfWork

logger = logging.getLogger(__name__)

ROLES = ("web", "router", "poller")
TICK_SECONDS = 5.0


def build_queue(config: QueueConfig, sessions: SessionFactory, work: UnitOfWork) -> Queue:
    if config.url == "sql":
        # One process serves an SQLite file (DESIGN.md), so its queue plans work in memory.
        sqlite = sessions.kw["bind"].dialect.name == "sqlite"
        return SqlQueue(sessions, config, work=work, exclusive=sqlite)
    if config.url.startswith(("redis://", "rediss://", "unix://")):
        from storage.queue.redis import RedisQueue

        queue: Queue = RedisQueue(Redis.from_url(config.url), config)
        return queue
    raise ValueError(f"queue.url: use 'sql' or a redis:// URL, not {config.url!r}")


def redis_client(config: QueueConfig) -> Redis | None:
    """The Redis the queue uses at scale (events and poller leases use it too), else None."""
    if config.url.startswith(("redis://", "rediss://", "unix://")):
        return Redis.from_url(config.url)
    return None


def _reporting_leadership(
    poller: Polls, gauge: Gauge
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """The poller's start and stop, each also setting the `pishkhan_poller_leading` gauge."""

    async def lead() -> None:
        await poller.start_polling()
        gauge.set(1)

    async def follow() -> None:
        gauge.set(0)
        await poller.stop_polling()

    return lead, follow


def _redis_windows(redis: Redis, prefix: str) -> SharedLimits:
    def make(name: str, limit: int, seconds: float) -> MessageLimit:
        return RedisWindow(redis, f"{prefix}:rate:{name}", limit, seconds)

    return make


def make_emit(queue: Queue, metrics: Metrics) -> Emit:
    async def emit(inbound: Inbound) -> None:
        await queue.publish(INBOUND_TOPIC, inbound.order_key, inbound.to_json())
        metrics.inbound.labels(inbound.channel).inc()

    return emit


def _measured(handler: Handler, metrics: Metrics) -> Handler:
    async def measured(item: Item) -> None:
        started = time.perf_counter()
        try:
            await handler(item)
        except Exception:
            metrics.routed.labels("failed").inc()
            raise
        metrics.routed.labels("ok").inc()
        metrics.route_seconds.observe(time.perf_counter() - started)

    return measured


def _measured_in_transaction(router: Router, metrics: Metrics) -> InTransaction:
    def measured(session: Session, items: Sequence[Item]) -> Handled:
        started = time.perf_counter()
        handled = router.handle_in_transaction(session, items)
        elapsed = time.perf_counter() - started
        metrics.routed.labels("ok").inc(len(items) - len(handled.failed))
        metrics.routed.labels("failed").inc(len(handled.failed))
        for _ in range(len(items) - len(handled.failed)):
            metrics.route_seconds.observe(elapsed / len(items))
        return handled

    return measured


async def ensure_first_admin(
    sessions: SessionFactory, *, capacity: int = 10
) -> tuple[str, str] | None:
    """On a database without agents, create an admin and return its login (shown once)."""
    async with sessions.begin() as session:
        if await session.scalar(select(func.count()).select_from(Agent)):
            return None
        password = secrets.token_urlsafe(12)
        agent = await create_agent(
            session,
            email="admin@pishkhan.local",
            name="Admin",
            password=password,
            role="admin",
            capacity=capacity,
        )
        return agent.email, password


@dataclass
class Runtime:
    config: Config
    roles: Collection[str] = ROLES
    migrate: bool = True
    engine: AsyncEngine | None = None
    services: Services | None = None
    router: Router | None = None
    work: UnitOfWork | None = None
    site_url: str = ""
    _runner: web.AppRunner | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _listeners: list[Callable[[Sequence[Published]], Awaitable[None]]] = field(default_factory=list)
    _redis: Redis | None = None

    async def start(self) -> None:
        config = self.config
        self.engine = create_engine(config.storage)
        if self.migrate:
            await upgrade(self.engine)
        sessions = session_factory(self.engine)
        self.work = UnitOfWork(self.engine, sessions)
        self.work.session_info[REACTIONS] = build_reactions(
            config.routing, channels=config.channels, public_url=config.server.public_url
        )
        queue = build_queue(config.queue, sessions, self.work)
        await queue.start()
        hub, metrics = Hub(), Metrics()
        self._listeners.append(hub.publish)
        self._listeners.append(queue_marked_deliveries(queue))
        # At scale (a Redis queue) several processes share the work: events cross between
        # them, and one poller at a time reads each mailbox or bot, under a lease.
        redis = self._redis = redis_client(config.queue)
        fanout = (
            RedisFanout(
                redis,
                f"{config.queue.prefix}:events",
                on_state=lambda up: metrics.fanout_connected.set(int(up)),
            )
            if redis
            else None
        )
        if fanout is not None:
            self._listeners.append(fanout.publish)
        channels: dict[str, Channel] = {
            c.name: build_channel(c) for c in config.channels if c.enabled
        }
        self.router = Router(
            sessions,
            config.routing,
            work=self.work,
            notify=self._notify,
            channel_teams={c.name: c.team for c in config.channels},
            bot_channels=button_channels(config.channels),
            queue=queue,
        )
        await self.router.start()
        actions = Actions(sessions, queue, self._notify, work=self.work, channels=channels)
        deliverer = Deliverer(
            sessions,
            channels,
            self._notify,
            max_attempts=config.queue.max_attempts,
            work=self.work,
        )
        emit = make_emit(queue, metrics)
        cursors = SqlCursorStore(sessions, work=self.work)
        blobs = SqlBlobStore(sessions, work=self.work)
        # Hands itself to the website chat channels; follows their conversations' events.
        teams = {c.name: c.team for c in config.channels}
        bridge = WebchatBridge(Visitors(sessions, config.routing, teams), hub, channels)
        self._listeners.append(bridge.publish)
        polling = [c for c in channels.values() if isinstance(c, Polls) and c.polls]
        for poller in polling:
            if redis is not None or "poller" not in self.roles:
                poller.defer_polling()
        for channel in channels.values():
            if isinstance(channel, StoresFiles):
                channel.use_blobs(blobs)
            if redis is not None and hasattr(channel, "use_shared_limits"):  # the web chat
                channel.use_shared_limits(_redis_windows(redis, config.queue.prefix))
            if hasattr(channel, "use_public_url"):  # a webhook URL derived from it (Telegram)
                channel.use_public_url(config.server.public_url)
            await channel.start(emit, cursors)
        self.services = Services(
            config=config,
            sessions=sessions,
            queue=queue,
            actions=actions,
            hub=hub,
            channels=channels,
            metrics=metrics,
            blobs=blobs,
        )
        if redis is not None:  # every web process counts failed logins together
            self.services.login_limiter = RedisLoginLimiter(redis, config.queue.prefix)
        if redis is not None and "poller" in self.roles:
            for poller in polling:
                name = poller.name  # type: ignore[attr-defined]
                lease = RedisLease(
                    redis,
                    f"{config.queue.prefix}:poller:{name}",
                    ttl=config.queue.poller_lease_seconds,
                )
                gauge = metrics.leading.labels(name)
                gauge.set(0)
                leader = Leadership(lease, *_reporting_leadership(poller, gauge))
                self._spawn(leader.run(self._stopping), f"poller-{name}")
        if fanout is not None and "web" in self.roles:
            hub.relay = fanout.signal  # who views and types where, customers typing
            self._spawn(
                fanout.run(
                    [hub.publish, bridge.publish],
                    self._stopping,
                    on_gap=lambda: hub.disconnect_all(MISSED),
                    on_signal=hub.receive,
                ),
                "event-fanout",
            )
            self._spawn(self._repeat_rooms(hub), "room-relay")
        if "router" in self.roles:
            if isinstance(queue, SqlQueue):  # an exclusive one routes as it publishes
                queue.handle_in_transaction(
                    INBOUND_TOPIC, _measured_in_transaction(self.router, metrics)
                )
            self._spawn(
                queue.consume(
                    INBOUND_TOPIC, _measured(self.router.handle, metrics), stopping=self._stopping
                ),
                "router-consumer",
            )
            self._spawn(
                queue.consume(OUTBOUND_TOPIC, deliverer.handle, stopping=self._stopping),
                "outbound-consumer",
            )
            self._spawn(self._tick_forever(), "router-tick")
            # Replies a crash cut short; alone: one process owns the SQLite file.
            sweep = DeliverySweep(
                sessions,
                queue,
                self._notify,
                work=self.work,
                unsent_uploads=timedelta(hours=config.server.uploads.unsent_hours),
            )
            alone = isinstance(queue, SqlQueue) and self.engine.dialect.name == "sqlite"
            self._spawn(sweep.run(self._stopping, alone=alone), "outbound-sweep")
        # Every process answers health checks and metrics; a web process serves the rest.
        app = create_app(self.services) if "web" in self.roles else create_ops_app(self.services)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.server.host, config.server.port)
        await site.start()
        addresses = self._runner.addresses
        port = addresses[0][1] if addresses else config.server.port
        self.site_url = f"http://{config.server.host}:{port}"

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        self._tasks.append(asyncio.ensure_future(coroutine))
        self._tasks[-1].set_name(name)

    async def _notify(self, events: Sequence[Published]) -> None:
        for listener in self._listeners:
            try:
                await listener(events)
            except Exception:
                logger.exception("an event listener failed; events are still in the log")

    async def _repeat_rooms(self, hub: Hub) -> None:
        """Repeat to the other web processes who views what here, before they forget it."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), REMOTE_ROOM_SECONDS / 3)
            hub.relay_rooms()

    async def _tick_forever(self) -> None:
        assert self.router is not None
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), TICK_SECONDS)
            if self._stopping.is_set():
                break
            try:
                await self.router.tick()
            except Exception:
                logger.exception("router upkeep failed; trying again in %s s", TICK_SECONDS)

    async def stop(self) -> None:
        """Stop intake, let consumers finish what they hold, close channels, dispose the engine.
        Safe to call twice."""
        if self._runner is not None:
            if self.services is not None:  # open WebSockets would hold the shutdown up
                for channel in self.services.channels.values():
                    if isinstance(channel, HoldsConnections):
                        await channel.close_connections()
            await self._runner.cleanup()
            self._runner = None
        self._stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
        if self.services is not None:
            for channel in self.services.channels.values():
                await channel.stop()
            await self.services.queue.stop()
            self.services = None
        if self.router is not None:
            await self.router.stop()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None
        if self.work is not None:
            await self.work.close()
            self.work = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None
