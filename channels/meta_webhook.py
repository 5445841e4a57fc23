"""Meta's webhook protocol, as pure functions: the subscription handshake, the
`X-Hub-Signature-256` check over the raw body, and reading a delivery's JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from channels.base import Rejected

SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_CHALLENGE = 256


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta sends: `sha256=` and the HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, app_secret: str) -> bool:
    """Constant-time check over the bytes as received (Meta escapes non-ASCII characters, so
    a body parsed and serialized again would not match)."""
    if not header or not header.isascii() or not app_secret:
        return False
    return hmac.compare_digest(sign(body, app_secret).encode(), header.strip().lower().encode())


def handshake(query: Mapping[str, str], verify_token: str) -> str:
    """The challenge to echo when the query is Meta's subscription check with our token;
    raises `Rejected(403)` otherwise."""
    given = query.get("hub.verify_token", "")
    challenge = query.get("hub.challenge", "")
    if (
        query.get("hub.mode") != "subscribe"
        or not verify_token
        or not hmac.compare_digest(given.encode(), verify_token.encode())
    ):
        raise Rejected(403, "not a subscription request with the right hub.verify_token")
    if not challenge or len(challenge) > MAX_CHALLENGE or not challenge.isprintable():
        raise Rejected(403, "hub.challenge: missing or not a short printable string")
    return challenge


def read_delivery(body: bytes) -> Mapping[str, Any]:
    """The delivery's JSON object; raises `Rejected(400)` when it is no JSON object."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise Rejected(400, "body is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise Rejected(400, "body must be a JSON object")
    return data


def entries(delivery: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The delivery's entries that are objects (a malformed entry is for the caller to skip)."""
    value = delivery.get("entry")
    if not isinstance(value, list):
        raise Rejected(400, "entry: a list is required")
    return list(value)
