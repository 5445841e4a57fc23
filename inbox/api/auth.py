"""Logging in and out, the caller's own account, presence and API tokens."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Literal

from aiohttp import web
from pydantic import Field

from channels.contacts import normalize_email
from inbox.accounts import (
    authenticate,
    close_session,
    issue_api_token,
    list_api_tokens,
    open_session,
    revoke_api_token,
    token_hash,
)
from inbox.api.base import (
    SESSION_COOKIE,
    ApiError,
    ApiRoute,
    Body,
    error,
    int_param,
    json_response,
    principal,
    read_json,
)
from inbox.realtime import LOGGED_OUT, TOKEN_REVOKED
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
    wait = await services.login_limiter.retry_after(client, who)
    if wait is not None:
        return json_response(
            {"error": "too many failed logins; wait a few minutes"},
            status=429,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    server = services.config.server
    await services.login_limiter.failed(client, who)  # until it succeeds; see LoginLimiter
    agent = await authenticate(services.sessions, body.email, body.password)
    if agent is None:
        return error(401, "wrong email or password")
    async with services.sessions.begin() as session:
        token, csrf = await open_session(
            session, agent, lifetime=timedelta(hours=server.session_hours)
        )
    await services.login_limiter.succeeded(client, who)
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
        services.hub.disconnect_credential(token_hash(cookie), LOGGED_OUT)
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
            "presence": who.presence,
            "locale": who.locale,
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
        token_id, token = await issue_api_token(session, principal(request).id, body.name)
    return json_response({"id": token_id, "token": token, "name": body.name}, status=201)


async def list_tokens(request: web.Request) -> web.StreamResponse:
    async with request.app[SERVICES].sessions() as session:
        tokens = await list_api_tokens(session, principal(request).id)
    return json_response(
        {
            "tokens": [
                {
                    "id": t.id,
                    "name": t.name,
                    "created_at": t.created_at.isoformat(),
                    "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                }
                for t in tokens
            ]
        }
    )


async def revoke_token(request: web.Request) -> web.StreamResponse:
    token_id = int_param(request, "id")
    services = request.app[SERVICES]
    async with services.sessions.begin() as session:
        revoked = await revoke_api_token(session, principal(request).id, token_id)
    if revoked is None:
        raise ApiError(404, f"not found: token {token_id}")
    services.hub.disconnect_credential(revoked, TOKEN_REVOKED)
    return json_response({"revoked": token_id})


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
    ApiRoute("GET", "/me/tokens", list_tokens, "agent", "The caller's bearer tokens"),
    ApiRoute(
        "DELETE",
        "/me/tokens/{id}",
        revoke_token,
        "agent",
        "Revoke one of the caller's bearer tokens; event streams opened with it close",
    ),
]
