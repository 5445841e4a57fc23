"""Labels: the names agents tag conversations and customers with, and their colours."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field
from sqlalchemy import select

from inbox.api.base import ApiError, ApiRoute, Body, int_param, json_response, principal, read_json
from inbox.services import SERVICES
from routing.actions import Conflict, label_summary
from storage.models import Label

COLOR = r"^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|[a-z]{1,20}|)$"
"""`#rgb`, `#rrggbb`, a CSS colour name, or "" (the UI's default): nothing that could carry
more CSS than a colour into the page."""


class NewLabel(Body):
    name: str = Field(min_length=1, max_length=100)
    color: str = Field(default="", max_length=20, pattern=COLOR)


class LabelPatch(Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    color: str | None = Field(default=None, max_length=20, pattern=COLOR)


def _name(name: str | None) -> str | None:
    if name is not None and not name.strip():
        raise ApiError(422, "name: must not be blank")
    return name.strip() if name is not None else None


async def list_labels(request: web.Request) -> web.StreamResponse:
    async with request.app[SERVICES].sessions() as session:
        rows = (await session.scalars(select(Label).order_by(Label.name))).all()
    return json_response({"labels": [label_summary(label) for label in rows]})


async def _save(
    request: web.Request, label_id: int | None, name: str | None, color: str | None
) -> web.StreamResponse:
    try:
        label = await request.app[SERVICES].actions.save_label(
            label_id, actor_agent_id=principal(request).id, name=_name(name), color=color
        )
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return json_response(label_summary(label), status=201 if label_id is None else 200)


async def create_label(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, NewLabel)
    return await _save(request, None, body.name, body.color)


async def update_label(request: web.Request) -> web.StreamResponse:
    label_id = int_param(request, "id")
    body = await read_json(request, LabelPatch)
    return await _save(request, label_id, body.name, body.color)


async def delete_label(request: web.Request) -> web.StreamResponse:
    label_id = int_param(request, "id")
    await request.app[SERVICES].actions.delete_label(label_id, actor_agent_id=principal(request).id)
    return json_response({"deleted": label_id})


ROUTES = [
    ApiRoute("GET", "/labels", list_labels, "agent", "Labels with their colours"),
    ApiRoute("POST", "/labels", create_label, "admin", "Add a label", body=NewLabel),
    ApiRoute(
        "PATCH",
        "/labels/{id}",
        update_label,
        "admin",
        "Rename or recolour a label",
        body=LabelPatch,
    ),
    ApiRoute(
        "DELETE",
        "/labels/{id}",
        delete_label,
        "admin",
        "Delete a label (it comes off every conversation and customer)",
    ),
]
