"""The aiohttp application factory: pages, health, metrics, channel endpoints and the agent API."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from sqlalchemy import text

from inbox import csat_page
from inbox.api import (
    admin,
    attachments,
    auth,
    automation,
    canned,
    conversations,
    customers,
    events,
    faq,
    labels,
    me,
    notifications,
    reports,
    search,
)
from inbox.api.base import ApiRoute, guard, json_response
from inbox.api.events import WEBSOCKETS
from inbox.api.openapi import openapi_handler
from inbox.services import SERVICES, Services

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
API_ROUTES: list[ApiRoute] = [
    *auth.ROUTES,
    *me.ROUTES,
    *conversations.ROUTES,
    *customers.ROUTES,
    *search.ROUTES,
    *notifications.ROUTES,
    *canned.ROUTES,
    *labels.ROUTES,
    *admin.ROUTES,
    *automation.ROUTES,
    *faq.ROUTES,
    *events.ROUTES,
    *attachments.ROUTES,
    *reports.ROUTES,
]
STATIC = Path(__file__).parent / "static"

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Machine paths answer errors as JSON; an unexpected failure is logged, never leaked."""
    machine = request.path.startswith(("/api/", "/channels/"))
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if not machine or exc.status < 400:
            raise
        response = json_response({"error": exc.reason}, status=exc.status)
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        if not machine:
            raise
        response = json_response({"error": "internal error"}, status=500)
    if request.path.startswith("/channels/") and response.status >= 400:
        parts = request.path.split("/")
        channel = parts[3] if len(parts) > 3 else "?"
        services = request.app[SERVICES]
        known = channel if channel in services.channels else "unknown"
        services.metrics.rejected.labels(known, str(response.status)).inc()
    return response


@web.middleware
async def security_headers(request: web.Request, handler: _Handler) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/channels/webchat/"):
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault(
                "Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'"
            )
    return response


async def index(_request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def healthz(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    checks: dict[str, str] = {}
    try:
        async with services.sessions() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await services.queue.stats("inbound")
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return json_response(
        {"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    for topic in ("inbound", "outbound"):
        stats = await services.queue.stats(topic)
        services.metrics.queue_depth.labels(topic).set(stats.depth)
        services.metrics.queue_pending.labels(topic).set(stats.pending)
        services.metrics.dead_letters.labels(topic).set(stats.dead)
        services.metrics.queue_lag.labels(topic).set(stats.lag_seconds)
    return web.Response(
        body=services.metrics.render(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Prometheus-Format": "0.0.4"},
    )


async def _close_websockets(app: web.Application) -> None:
    await app[SERVICES].hub.close()
    open_sockets = app[WEBSOCKETS]
    for ws in list(open_sockets):
        await ws.close(code=1001, message=b"server shutting down")


def create_ops_app(services: Services) -> web.Application:
    """What a router or poller process serves: `/healthz` for the load balancer or supervisor
    and `/metrics` for Prometheus, nothing else."""
    app = web.Application(middlewares=[security_headers, json_errors])
    app[SERVICES] = services
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def create_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[security_headers, json_errors],
        client_max_size=services.config.server.max_body_bytes,
    )
    app[SERVICES] = services
    app[WEBSOCKETS] = set[web.WebSocketResponse]()
    app.on_shutdown.append(_close_websockets)
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    csat_page.add_routes(app)  # public: the signed link is the credential
    for route in API_ROUTES:
        app.router.add_route(route.method, API_PREFIX + route.path, guard(route))
    app.router.add_get(API_PREFIX + "/openapi.json", openapi_handler(API_ROUTES))
    for channel in services.channels.values():
        base = f"/channels/{channel.type}/{channel.name}"
        for channel_route in channel.routes():
            app.router.add_route(
                channel_route.method, base + channel_route.path, channel_route.handler
            )
    return app
