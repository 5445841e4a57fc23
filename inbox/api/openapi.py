"""`/api/v1/openapi.json`, generated from the route table so it cannot drift from the code."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from inbox.api.base import CSRF_HEADER, SESSION_COOKIE, ApiRoute, json_response

_PARAM = re.compile(r"\{(\w+)\}")


def build_spec(routes: Sequence[ApiRoute], *, prefix: str = "/api/v1") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "x-role": route.role,
            "responses": {
                "200": {"description": "OK"},
                "400": {"description": "Malformed request"},
                "401": {"description": "Not logged in"},
                "403": {"description": "Role or CSRF check failed"},
                "404": {"description": "Not found or not visible to the caller"},
                "422": {"description": "Invalid values"},
            },
        }
        if route.role == "public":
            operation["security"] = []
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ] + [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in route.query
        ]
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[route.body.__name__] = schema
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}
                    }
                },
            }
        paths.setdefault(prefix + route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pishkhan agent API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": f"Writes must also send the {CSRF_HEADER} header",
                },
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }


def openapi_handler(routes: Sequence[ApiRoute]) -> Any:
    spec = build_spec(routes)

    async def openapi(_request: web.Request) -> web.StreamResponse:
        return json_response(spec)

    return openapi
