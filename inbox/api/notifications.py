"""The caller's notifications: mentions in private notes, and assignments by someone else."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import aliased

from inbox.api.base import ApiError, ApiRoute, int_param, json_response, principal
from inbox.services import SERVICES
from routing.mentions import notification_summary
from storage.models import Agent, Notification

LIMIT = 100
Actor = aliased(Agent)


async def list_notifications(request: web.Request) -> web.StreamResponse:
    """Newest first, the latest 100 (`?unread=1`: only those not yet read)."""
    unread = request.query.get("unread", "0")
    if unread not in ("0", "1", "true", "false"):
        raise ApiError(400, "unread: 1 or 0")
    query = (
        select(Notification, Actor)
        .outerjoin(Actor, Actor.id == Notification.actor_agent_id)
        .where(Notification.agent_id == principal(request).id)
        .order_by(Notification.id.desc())
        .limit(LIMIT)
    )
    if unread in ("1", "true"):
        query = query.where(Notification.read_at.is_(None))
    async with request.app[SERVICES].sessions() as session:
        rows = (await session.execute(query)).all()
    return json_response({"notifications": [notification_summary(n, actor) for n, actor in rows]})


async def read_one(request: web.Request) -> web.StreamResponse:
    notification_id = int_param(request, "id")
    await request.app[SERVICES].actions.read_notifications(principal(request).id, notification_id)
    return json_response({"read": notification_id})


async def read_all(request: web.Request) -> web.StreamResponse:
    changed = await request.app[SERVICES].actions.read_notifications(principal(request).id)
    return json_response({"read": changed})


ROUTES = [
    ApiRoute(
        "GET",
        "/notifications",
        list_notifications,
        "agent",
        "The caller's notifications, newest first",
        query=("unread",),
    ),
    ApiRoute("POST", "/notifications/{id}/read", read_one, "agent", "Mark one notification read"),
    ApiRoute("POST", "/notifications/read-all", read_all, "agent", "Mark all notifications read"),
]
