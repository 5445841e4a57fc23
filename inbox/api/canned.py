"""Canned responses: replies agents insert by typing `/shortcut`; admins keep the list."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field
from sqlalchemy import select

from inbox.api.base import ApiError, ApiRoute, Body, int_param, json_response, principal, read_json
from inbox.services import SERVICES
from routing.actions import Conflict, canned_summary
from storage.models import CannedResponse

SHORTCUT = r"^[\w-]+$"
"""Letters (Persian too), digits, `_` and `-`: what can follow `/` in the composer."""


class NewCanned(Body):
    shortcut: str = Field(min_length=1, max_length=50, pattern=SHORTCUT)
    title: str = Field(default="", max_length=200)
    text: str = Field(min_length=1, max_length=20_000)


class CannedPatch(Body):
    shortcut: str | None = Field(default=None, min_length=1, max_length=50, pattern=SHORTCUT)
    title: str | None = Field(default=None, max_length=200)
    text: str | None = Field(default=None, min_length=1, max_length=20_000)


async def list_canned(request: web.Request) -> web.StreamResponse:
    async with request.app[SERVICES].sessions() as session:
        rows = (
            await session.scalars(select(CannedResponse).order_by(CannedResponse.shortcut))
        ).all()
    return json_response({"canned_responses": [canned_summary(c) for c in rows]})


async def _save(
    request: web.Request, canned_id: int | None, body: NewCanned | CannedPatch
) -> web.StreamResponse:
    try:
        canned = await request.app[SERVICES].actions.save_canned(
            canned_id,
            actor_agent_id=principal(request).id,
            shortcut=body.shortcut,
            title=body.title,
            text=body.text,
        )
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return json_response(canned_summary(canned), status=201 if canned_id is None else 200)


async def create_canned(request: web.Request) -> web.StreamResponse:
    return await _save(request, None, await read_json(request, NewCanned))


async def update_canned(request: web.Request) -> web.StreamResponse:
    canned_id = int_param(request, "id")
    return await _save(request, canned_id, await read_json(request, CannedPatch))


async def delete_canned(request: web.Request) -> web.StreamResponse:
    canned_id = int_param(request, "id")
    await request.app[SERVICES].actions.delete_canned(
        canned_id, actor_agent_id=principal(request).id
    )
    return json_response({"deleted": canned_id})


ROUTES = [
    ApiRoute("GET", "/canned-responses", list_canned, "agent", "Canned responses, by shortcut"),
    ApiRoute(
        "POST", "/canned-responses", create_canned, "admin", "Add a canned response", body=NewCanned
    ),
    ApiRoute(
        "PATCH",
        "/canned-responses/{id}",
        update_canned,
        "admin",
        "Change a canned response",
        body=CannedPatch,
    ),
    ApiRoute(
        "DELETE", "/canned-responses/{id}", delete_canned, "admin", "Delete a canned response"
    ),
]
