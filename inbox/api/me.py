"""The caller's own preferences (the rest of `/me` lives with the session, in `auth`)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from inbox.api.base import ApiRoute, Body, json_response, principal, read_json
from inbox.services import SERVICES


class PreferencesBody(Body):
    locale: Literal["fa", "en"]


async def set_preferences(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, PreferencesBody)
    await request.app[SERVICES].actions.set_locale(principal(request).id, body.locale)
    return json_response({"locale": body.locale})


ROUTES = [
    ApiRoute(
        "PUT",
        "/me/preferences",
        set_preferences,
        "agent",
        "Set own preferences (UI language: fa or en)",
        body=PreferencesBody,
    ),
]
