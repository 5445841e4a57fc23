"""Reading a request body with a hard size limit, for the channels that accept HTTP posts."""

from __future__ import annotations

from aiohttp import web

from channels.base import Rejected


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, or `Rejected(413)` as soon as it is known to exceed `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise Rejected(413, f"body larger than {limit} bytes")
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise Rejected(413, f"body larger than {limit} bytes")
    return bytes(body)
