"""`/api/v1/openapi.json`, generated from the route table so it cannot drift from the code."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from inbox.api.base import CSRF_HEADER, SESSION_COOKIE, ApiRoute, json_response

_PARAM = re.compile(r"\{(\w+)\}")

_UPLOADED = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "name": {"type": "string"},
        "content_type": {"type": "string", "description": "sniffed from the bytes"},
        "size": {"type": "integer"},
        "url": {"type": "string"},
        "conversation_id": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
FORM_OPERATIONS: dict[str, dict[str, Any]] = {
    "upload_attachments": {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "One or more files (each a `file` part)",
                            }
                        },
                        "required": ["file"],
                    }
                }
            },
        },
        "responses": {
            "201": {
                "description": "Stored; send the ids with the reply",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"attachments": {"type": "array", "items": _UPLOADED}},
                        }
                    }
                },
            },
            "413": {"description": "A file, or the files together, past the size limits"},
            "415": {"description": "Not multipart, or a file type the policy refuses"},
        },
    },
    "import_faq": {
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {
                    "schema": {"type": "string", "description": "The knowledge base (UTF-8)"}
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        },
        "responses": {
            "200": {"description": "Imported: `{replace, created, updated, deleted, ids}`"},
            "413": {"description": "Larger than the server's body limit"},
            "415": {"description": "Neither YAML nor a form with `file`"},
            "422": {"description": "Nothing imported: `{error, problems: [...]}`"},
        },
    },
}
"""Operations whose body is not JSON (file uploads), described by hand, by operation id."""

_REPLY_WINDOW = {
    "type": "object",
    "description": "Free-form replies are allowed until `closes_at` (the customer's last "
    "message plus the channel's window); `closes_at` is null on a channel without a window "
    "(then always open) or when the customer never wrote",
    "properties": {
        "closes_at": {"type": ["string", "null"], "format": "date-time"},
        "open": {"type": "boolean"},
    },
}
_WINDOW_CLOSED = {
    "description": "The channel's reply window has closed: `{error, reply_window}`; the error "
    "says when, and that an approved template can be sent instead",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "reply_window": _REPLY_WINDOW},
            }
        }
    },
}
_TEMPLATE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "language": {"type": "string"},
        "parameters": {
            "type": "array",
            "items": {"type": "string"},
            "description": "What each placeholder ({{1}}, {{2}}, ...) stands for, in order",
        },
        "text": {"type": "string", "description": "The body with its placeholders, if known"},
    },
}
RESPONSES: dict[str, dict[str, Any]] = {
    "get_conversation": {
        "200": {
            "description": "The conversation, with `reply_window`",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"reply_window": _REPLY_WINDOW},
                    }
                }
            },
        }
    },
    "post_message": {"201": {"description": "Stored (and queued)"}, "409": _WINDOW_CLOSED},
    "retry_message": {"409": _WINDOW_CLOSED},
    "list_templates": {
        "200": {
            "description": "`{templates, reply_window}`; no templates on most channels",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "templates": {"type": "array", "items": _TEMPLATE},
                            "reply_window": _REPLY_WINDOW,
                        },
                    }
                }
            },
        }
    },
    "send_template": {
        "201": {
            "description": "Stored and queued: the message, its text a readable rendering, "
            "`metadata.template` = `{name, language, parameters}`"
        },
        "422": {
            "description": "Unknown template, wrong number of parameters, an empty one, or a "
            "channel without templates"
        },
    },
}
"""Answers described beyond the common ones, by operation id."""


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
        if extra := RESPONSES.get(route.handler.__name__):
            operation["responses"] = {**operation["responses"], **extra}
        if form := FORM_OPERATIONS.get(route.handler.__name__):
            operation["requestBody"] = form["requestBody"]
            operation["responses"] = {**operation["responses"], **form["responses"]}
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
