"""The realtime event stream: a WebSocket that first replays what the agent missed, then lives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from sqlalchemy import select

from inbox.accounts import token_hash
from inbox.api.base import SESSION_COOKIE, ApiRoute, authenticate, error
from inbox.realtime import (
    CREDENTIAL_EXPIRED,
    TOO_SLOW,
    Cutoff,
    Signal,
    Subscriber,
    can_see,
    may_receive,
)
from inbox.services import SERVICES
from routing.events import Published, Scope, customer_scopes, recipient_of
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
MAX_CLIENT_FRAME = 4096
"""The largest frame a client may send (signals are tiny); a larger one closes the stream (1009)."""
CLIENT_BURST = 20
CLIENT_RATE = 2.0
"""Client signals allowed: a burst of CLIENT_BURST, refilled at CLIENT_RATE a second. Beyond it
they are ignored; a client that keeps on far beyond it is disconnected (FLOODING)."""
FLOODING = Cutoff(1008, "too many messages")


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
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_CLIENT_FRAME)
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
        about = {
            event.customer_id
            for event, _, _ in rows
            if event.conversation_id is None and event.customer_id is not None
        }
        scopes: dict[int, tuple[Scope, ...]] = (
            await session.run_sync(customer_scopes, about) if about else {}
        )
    sent: set[int] = set()
    for event, team_id, assignee_id in rows:
        if subscriber.cutoff is not None:
            return sent
        published = Published(
            event.id,
            event.type,
            event.conversation_id,
            team_id,
            assignee_id,
            event.data,
            event.created_at,
            customer_id=event.customer_id,
            actor_agent_id=event.actor_agent_id,
            recipient_id=recipient_of(event.type, event.data),
            scopes=scopes.get(event.customer_id, ()) if event.customer_id is not None else (),
        )
        if may_receive(subscriber.principal, published):
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
    reader = asyncio.create_task(_read_signals(request, ws, subscriber), name="events-ws-reader")
    getter: asyncio.Task[Published | Signal | None] | None = None
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
                if (failure := reader.exception()) is not None:
                    logger.warning("reading an event stream's signals failed: %r", failure)
                    return None
                return reader.result()
            if getter in done:
                item: Published | Signal | None = getter.result()
                getter = None
                # Whatever else is queued goes out now too: one wake-up per burst, not per event.
                for sent in range(BURST):
                    if sent:
                        if subscriber.queue.empty():
                            break
                        item = subscriber.queue.get_nowait()
                    if item is None or subscriber.cutoff is not None:
                        return subscriber.cutoff
                    if isinstance(item, Signal):
                        await ws.send_json(item.as_dict())
                    elif item.id in replayed:
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


BURST = 256
"""Queued events sent per wake-up of a stream before it looks at its other work again."""


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


async def _read_signals(
    request: web.Request, ws: web.WebSocketResponse, subscriber: Subscriber
) -> Cutoff | None:
    """Read the client's signals until it leaves: `ping`, and the collision signals `viewing`
    and `typing`. What is not one of them (bad JSON, binary, unknown types, bad ids) is ignored;
    so are signals beyond the rate limit, and a client far beyond it is cut off (returned)."""
    loop = asyncio.get_running_loop()
    tokens, refilled, ignored = float(CLIENT_BURST), loop.time(), 0
    async for message in ws:
        if message.type != WSMsgType.TEXT:
            continue
        now = loop.time()
        tokens = min(float(CLIENT_BURST), tokens + (now - refilled) * CLIENT_RATE)
        refilled = now
        if tokens >= CLIENT_BURST - 1:
            ignored = 0  # it calmed down
        if tokens < 1:
            ignored += 1
            if ignored > 10 * CLIENT_BURST:
                logger.info(
                    "agent %s flooded the event stream; closing it", subscriber.principal.id
                )
                return FLOODING
            continue
        tokens -= 1
        if message.data == "ping":
            await ws.send_str("pong")
            continue
        signal = _parse_signal(message.data)
        if signal is None:
            continue
        kind, conversation_id = signal
        hub = request.app[SERVICES].hub
        if kind == "typing" and conversation_id is not None:
            hub.typing(subscriber, conversation_id)
        elif kind == "viewing":
            if conversation_id is None:
                hub.view(subscriber, None)
            elif (scope := await _scope_for(request, subscriber, conversation_id)) is not None:
                hub.view(subscriber, conversation_id, team_id=scope[0], assignee_id=scope[1])
    return None


def _parse_signal(data: str) -> tuple[str, int | None] | None:
    """`(type, conversation_id)` of a well-formed collision signal, else `None`."""
    try:
        parsed: Any = json.loads(data)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or parsed.get("type") not in ("viewing", "typing"):
        return None
    conversation_id = parsed.get("conversation_id")
    if conversation_id is None and parsed["type"] == "viewing":
        return "viewing", None
    if type(conversation_id) is not int or not 0 < conversation_id < 2**63:
        return None
    return parsed["type"], conversation_id


async def _scope_for(
    request: web.Request, subscriber: Subscriber, conversation_id: int
) -> Scope | None:
    """The conversation's (team_id, assignee_id) if it exists and the agent may see it."""
    async with request.app[SERVICES].sessions() as session:
        row = (
            await session.execute(
                select(Conversation.team_id, Conversation.assignee_id).where(
                    Conversation.id == conversation_id
                )
            )
        ).first()
    if row is None or not can_see(subscriber.principal, row[0], row[1]):
        return None
    return row[0], row[1]


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
