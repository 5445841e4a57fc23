"""Logging in and out, the caller's own account, presence and API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from aiohttp import web
from pydantic import Field

from channels.contacts import normalize_email
from inbox.accounts import authenticate, close_session, create_api_token, open_session
from inbox.api.base import (
    SESSION_COOKIE,
    ApiRoute,
    Body,
    error,
    json_response,
    principal,
    read_json,
)
from inbox.services import SERVICES


class LoginBody(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1000)


class PresenceBody(Body):
    presence: Literal["online", "away", "offline"]


class TokenBody(Body):
    name: str = Field(min_length=1, max_length=200)


async def login(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    body = await read_json(request, LoginBody)
    client = request.remote or "?"
    who = normalize_email(body.email) or body.email.strip().lower()
    if services.login_limiter.blocked(client, who):
        return error(429, "too many failed logins; wait a few minutes")
    server = services.config.server
    async with services.sessions.begin() as session:
        agent = await authenticate(session, body.email, body.password)
        if agent is None:
            services.login_limiter.failed(client, who)
            return error(401, "wrong email or password")
        token, csrf = await open_session(
            session, agent, lifetime=timedelta(hours=server.session_hours)
        )
    services.login_limiter.succeeded(client, who)
    response = json_response(
        {
            "agent": {"id": agent.id, "email": agent.email, "name": agent.name, "role": agent.role},
            "csrf_token": csrf,
        }
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=server.secure_cookies,
        max_age=int(server.session_hours * 3600),
        path="/",
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        async with services.sessions.begin() as session:
            await close_session(session, cookie)
    response = json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    return json_response(
        {
            "id": who.id,
            "email": who.email,
            "name": who.name,
            "role": who.role,
            "team_ids": sorted(who.team_ids),
            "csrf_token": who.csrf_token,
        }
    )


async def set_presence(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, PresenceBody)
    await request.app[SERVICES].actions.set_presence(principal(request).id, body.presence)
    return json_response({"presence": body.presence})


async def new_token(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, TokenBody)
    async with request.app[SERVICES].sessions.begin() as session:
        token = await create_api_token(session, principal(request).id, body.name)
    return json_response({"token": token, "name": body.name}, status=201)


ROUTES = [
    ApiRoute(
        "POST", "/auth/login", login, "public", "Log in; sets the session cookie", body=LoginBody
    ),
    ApiRoute("POST", "/auth/logout", logout, "agent", "Log out"),
    ApiRoute("GET", "/me", me, "agent", "The caller's account and CSRF token"),
    ApiRoute("PUT", "/me/presence", set_presence, "agent", "Set own presence", body=PresenceBody),
    ApiRoute(
        "POST",
        "/me/tokens",
        new_token,
        "agent",
        "Create a bearer token (shown once)",
        body=TokenBody,
    ),
]
