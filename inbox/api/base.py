"""How an API route is declared and guarded: authentication, role, CSRF, JSON body, errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inbox.accounts import Principal, from_bearer, from_session_cookie
from inbox.services import SERVICES
from routing.actions import Invalid, NotFound
from storage.models import utcnow

logger = logging.getLogger(__name__)

SESSION_COOKIE = "pishkhan_session"
CSRF_HEADER = "X-CSRF-Token"
PRINCIPAL = web.RequestKey("principal", Principal)

Role = Literal["public", "agent", "admin"]
Id = Annotated[int, Field(gt=0, lt=2**63)]
"""A database id: positive and within 64 bits."""


def _text_problem(value: Any) -> str | None:
    """NUL (which PostgreSQL refuses) or a lone surrogate (not Unicode text) anywhere inside."""
    if isinstance(value, str):
        if "\x00" in value:
            return "must not contain NUL characters"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode text"
        return None
    if isinstance(value, dict):
        return next(filter(None, map(_text_problem, [*value.keys(), *value.values()])), None)
    if isinstance(value, list | tuple):
        return next(filter(None, map(_text_problem, value)), None)
    return None


class Body(BaseModel):
    """Every request body: unknown keys refused, text that the database can store."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        if (problem := _text_problem(data)) is not None:
            raise ValueError(f"text {problem}")
        return data


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """One API route. `role` is who may call it; `body` and `response` feed the OpenAPI doc."""

    method: str
    path: str
    handler: Handler
    role: Role
    summary: str
    body: type[BaseModel] | None = None
    query: tuple[str, ...] = ()


class ApiError(Exception):
    """Answer the request with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON with Persian (and every other script) left readable rather than \\u-escaped."""
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def error(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, **extra}, status=status)


async def authenticate(request: web.Request) -> Principal | None:
    """The agent behind a bearer token or a session cookie, or `None`."""
    services = request.app[SERVICES]
    now = utcnow()
    header = request.headers.get("Authorization", "")
    async with services.sessions() as session:
        if header.startswith("Bearer "):
            return await from_bearer(session, header[7:].strip(), now=now)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await from_session_cookie(session, cookie, now=now)
    return None


def guard(route: ApiRoute) -> Handler:
    """Wrap a handler so that it runs only for a caller with the route's role."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if route.role != "public":
            principal = await authenticate(request)
            if principal is None:
                return error(401, "log in or send a bearer token")
            if route.role == "admin" and not principal.is_admin:
                return error(403, "admins only")
            unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
            if (
                unsafe
                and principal.csrf_token is not None
                and (request.headers.get(CSRF_HEADER) != principal.csrf_token)
            ):
                return error(403, f"missing or wrong {CSRF_HEADER} header")
            request[PRINCIPAL] = principal
        try:
            return await route.handler(request)
        except ApiError as exc:
            return error(exc.status, exc.message)
        except NotFound as exc:
            return error(404, f"not found: {exc}")
        except Invalid as exc:
            return error(422, str(exc))

    return guarded


async def read_json(request: web.Request, model: type[M]) -> M:
    """The body validated against `model`; raises `ApiError` with a clear 4xx otherwise."""
    limit = request.app[SERVICES].config.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"body larger than {limit} bytes")
    if request.content_type != "application/json":
        raise ApiError(415, "send application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"body larger than {limit} bytes") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "body is not valid UTF-8 JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(422, f"{where}: {first['msg']}") from None


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def query_id(request: web.Request, name: str) -> int | None:
    """An optional id in the query string; a 400 when it is not one."""
    raw = request.query.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63):
        raise ApiError(400, f"{name}: an id")
    return int(raw)


def int_param(request: web.Request, name: str) -> int:
    """An id in the path; a 404 when it cannot be one."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63):
        raise ApiError(404, f"not found: {name} {raw!r}")
    return int(raw)
