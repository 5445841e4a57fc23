"""The realtime event stream: a WebSocket that first replays what the agent missed, then lives."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from sqlalchemy import select

from inbox.accounts import token_hash
from inbox.api.base import SESSION_COOKIE, ApiRoute, authenticate, error
from inbox.realtime import CREDENTIAL_EXPIRED, TOO_SLOW, Cutoff, Subscriber, can_see
from inbox.services import SERVICES
from routing.events import Published
from storage.models import Conversation, Event

logger = logging.getLogger(__name__)

WEBSOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("websockets")
REPLAY_LIMIT = 1000
REVALIDATE_SECONDS = 60.0
"""How often an open stream checks that its session or token still holds and refreshes the
agent's teams. Logout, revocation and admin changes on this node cut streams off at once; this
catches the rest (expiry, another web node, the command line). Read when a stream goes live, so
tests can shorten it."""
CHECK_FAILED = Cutoff(1011, "could not check credentials; reconnect with since=")


def _same_origin(request: web.Request) -> bool:
    """Browsers send cookies with cross-site WebSocket handshakes; refuse foreign origins."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


def _credential(request: web.Request) -> str | None:
    """The hash of the token `authenticate` went by (a bearer token before the cookie), so that
    logging out or revoking that token can find the streams it opened."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return token_hash(header[7:].strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    return token_hash(cookie) if cookie else None


async def events(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    if principal is None:
        return error(401, "log in or send a bearer token")
    if principal.csrf_token is not None and not _same_origin(request):
        return error(403, "cross-origin WebSocket refused")
    since_raw = request.query.get("since")
    if since_raw is not None and not since_raw.isdigit():
        return error(400, "since: an event id")
    services = request.app[SERVICES]
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    request.app[WEBSOCKETS].add(ws)
    # Subscribe before reading the log, so that nothing committed meanwhile falls in between.
    subscriber = services.hub.subscribe(principal, credential=_credential(request))
    services.metrics.websockets.set(services.hub.subscriber_count)
    cutoff: Cutoff | None = None
    try:
        replayed: set[int] = set()
        if since_raw is not None:
            replayed = await _replay(request, ws, subscriber, int(since_raw))
        cutoff = await _live(request, ws, subscriber, replayed)
    finally:
        services.hub.unsubscribe(subscriber)
        services.metrics.websockets.set(services.hub.subscriber_count)
        request.app[WEBSOCKETS].discard(ws)
        if cutoff is not None:
            await ws.close(code=cutoff.code, message=cutoff.message.encode())
        await ws.close()
    return ws


async def _replay(
    request: web.Request, ws: web.WebSocketResponse, subscriber: Subscriber, since: int
) -> set[int]:
    """Send the logged events after `since` (at most REPLAY_LIMIT); returns the ids sent, which
    the live stream may deliver again. When the limit cut the replay short, says so with a
    `replay.truncated` message whose `next_since` continues it."""
    async with request.app[SERVICES].sessions() as session:
        rows = (
            await session.execute(
                select(Event, Conversation.team_id, Conversation.assignee_id)
                .outerjoin(Conversation, Conversation.id == Event.conversation_id)
                .where(Event.id > since)
                .order_by(Event.id)
                .limit(REPLAY_LIMIT)
            )
        ).all()
    sent: set[int] = set()
    for event, team_id, assignee_id in rows:
        if subscriber.cutoff is not None:
            return sent
        if can_see(subscriber.principal, team_id, assignee_id):
            published = Published(
                event.id,
                event.type,
                event.conversation_id,
                team_id,
                assignee_id,
                event.data,
                event.created_at,
            )
            await ws.send_json({**published.as_dict(), "replayed": True})
            sent.add(event.id)
    if len(rows) == REPLAY_LIMIT:
        await ws.send_json({"type": "replay.truncated", "next_since": rows[-1][0].id})
    return sent


async def _live(
    request: web.Request, ws: web.WebSocketResponse, subscriber: Subscriber, replayed: set[int]
) -> Cutoff | None:
    """Forward the subscriber's events until the client leaves or the stream is cut off; returns
    why it was cut off, if it was.

    Events of concurrent transactions can arrive out of id order, so duplicates of the replay
    are recognised by id, never by comparing with the last id sent."""
    loop = asyncio.get_running_loop()
    every = REVALIDATE_SECONDS
    next_check = loop.time() + every
    reader = asyncio.create_task(_read_until_closed(ws), name="events-ws-reader")
    getter: asyncio.Task[Published | None] | None = None
    try:
        while not ws.closed:
            if getter is None:
                getter = asyncio.create_task(subscriber.queue.get(), name="events-ws-get")
            done, _ = await asyncio.wait(
                {getter, reader},
                timeout=max(0.0, next_check - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if reader in done:
                return None
            if getter in done:
                item, getter = getter.result(), None
                if item is None or subscriber.cutoff is not None:
                    return subscriber.cutoff
                if item.id in replayed:
                    replayed.discard(item.id)  # each one comes back live at most once
                else:
                    await ws.send_json(item.as_dict())
                if subscriber.overflowed and subscriber.queue.empty():
                    return TOO_SLOW
            if loop.time() >= next_check:
                if (cutoff := await _recheck(request, subscriber)) is not None:
                    return cutoff
                next_check = loop.time() + every
        return None
    finally:
        for task in (reader, getter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _recheck(request: web.Request, subscriber: Subscriber) -> Cutoff | None:
    """Authenticate the connection's request again: a cutoff when it no longer holds, otherwise
    the agent's current role and teams are applied to their streams."""
    try:
        fresh = await authenticate(request)
    except Exception:
        logger.exception("re-checking an event stream's credentials failed; closing it")
        return CHECK_FAILED
    if fresh is None:
        return CREDENTIAL_EXPIRED
    request.app[SERVICES].hub.update_agent(fresh.id, role=fresh.role, team_ids=fresh.team_ids)
    return subscriber.cutoff


async def _read_until_closed(ws: web.WebSocketResponse) -> None:
    async for message in ws:
        if message.type == WSMsgType.TEXT and message.data == "ping":
            await ws.send_str("pong")


ROUTES = [
    ApiRoute(
        "GET",
        "/events",
        events,
        "public",
        "Realtime events (WebSocket; authenticates itself). `since=ID` replays missed ones; "
        "`replay.truncated` says where to continue when the replay hit its limit",
        query=("since",),
    ),
]
