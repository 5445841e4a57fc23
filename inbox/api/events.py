"""The realtime event stream: a WebSocket that first replays what the agent missed, then lives."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from sqlalchemy import select

from inbox.api.base import ApiRoute, authenticate, error
from inbox.realtime import can_see
from inbox.services import SERVICES
from routing.events import Published
from storage.models import Conversation, Event

WEBSOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("websockets")
REPLAY_LIMIT = 1000


def _same_origin(request: web.Request) -> bool:
    """Browsers send cookies with cross-site WebSocket handshakes; refuse foreign origins."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


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
    subscriber = services.hub.subscribe(principal)
    services.metrics.websockets.set(services.hub.subscriber_count)
    last_id = 0
    try:
        if since_raw is not None:
            async with services.sessions() as session:
                rows = (
                    await session.execute(
                        select(Event, Conversation.team_id, Conversation.assignee_id)
                        .outerjoin(Conversation, Conversation.id == Event.conversation_id)
                        .where(Event.id > int(since_raw))
                        .order_by(Event.id)
                        .limit(REPLAY_LIMIT)
                    )
                ).all()
            for event, team_id, assignee_id in rows:
                if can_see(principal, team_id, assignee_id):
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
                last_id = event.id
        reader = asyncio.create_task(_read_until_closed(ws), name="events-ws-reader")
        try:
            while not ws.closed:
                getter = asyncio.create_task(subscriber.queue.get(), name="events-ws-get")
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                item = getter.result()
                if item is None:
                    break
                if item.id > last_id:
                    await ws.send_json(item.as_dict())
                    last_id = item.id
                if subscriber.overflowed and subscriber.queue.empty():
                    break
            if subscriber.overflowed:
                await ws.close(code=4000, message=b"too slow; reconnect with since=")
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    finally:
        services.hub.unsubscribe(subscriber)
        services.metrics.websockets.set(services.hub.subscriber_count)
        request.app[WEBSOCKETS].discard(ws)
        await ws.close()
    return ws


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
        "Realtime events (WebSocket; authenticates itself). `since=ID` replays missed ones",
        query=("since",),
    ),
]
