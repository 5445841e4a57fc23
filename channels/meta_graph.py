"""A small Graph API client on aiohttp for the Meta channels: JSON and multipart calls with
the channel's token, media lookup and download, and Meta's errors turned into
`DeliveryError`s that say whether retrying can help (rate limits, 5xx and network trouble are
retried here with backoff first)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from channels.base import DeliveryError

logger = logging.getLogger(__name__)

RATE_LIMITS = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
"""Application, user, page and WhatsApp throughput limits: wait and try again."""
TRANSIENT = frozenset({1, 2, 131000, 131016, 133004})
"""Meta's "unknown error", "service unavailable" and "server temporarily unavailable"."""
EXPLAINED = {
    190: "the access token is invalid or expired",
    10: "the app lacks permission for this",
    200: "the app lacks permission for this",
    551: "this person is not available (blocked the business, or left)",
    131047: "more than 24 hours since the customer's last message: send a template",
    2018278: "outside Messenger's 24-hour reply window",
    131026: "the message could not be delivered to this number",
    368: "blocked by Meta for a policy violation",
}


class GraphError(DeliveryError):
    """A Graph API error: Meta's `code` and message, permanent unless retrying can help."""

    def __init__(self, reason: str, *, code: int | None, permanent: bool) -> None:
        super().__init__(reason, permanent=permanent)
        self.code = code


@dataclass(frozen=True, slots=True)
class Media:
    """A downloaded file."""

    data: bytes
    content_type: str


def classify(status: int, payload: Any) -> GraphError:
    """The error an HTTP status and Graph error body mean."""
    error = payload.get("error") if isinstance(payload, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    message = str(error.get("message") or f"HTTP {status}")[:500]
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, Mapping) else None
    if details and str(details) not in message:
        message = f"{message} ({str(details)[:300]})"
    transient = status == 429 or status >= 500 or code in RATE_LIMITS or code in TRANSIENT
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    explained = EXPLAINED.get(subcode or -1) or (EXPLAINED.get(code) if code is not None else None)
    reason = f"Meta refused ({code if code is not None else status}): {message}"
    if explained and not transient:
        reason = f"{reason} — {explained}"
    return GraphError(reason, code=code, permanent=not transient)


class GraphClient:
    """One channel's Graph API: `base_url/version/...` with `Authorization: Bearer <token>`.
    Created in the channel's `start()`, closed in `stop()`."""

    def __init__(
        self,
        *,
        base_url: str,
        version: str,
        token: str,
        timeout_seconds: float,
        attempts: int,
        backoff_seconds: float,
    ) -> None:
        self.root = f"{base_url.rstrip('/')}/{version.strip('/')}"
        self._token = token
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._auth = {"Authorization": f"Bearer {token}"}
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_seconds))

    async def close(self) -> None:
        await self._http.close()

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        form: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> Mapping[str, Any]:
        """The JSON answer of `method root/path`; `form` is sent as multipart (a value of
        `(filename, content_type, bytes)` is a file). Raises `GraphError`."""
        attempts = self._attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._once(method, path, json=json, form=form, params=params)
            except GraphError as exc:
                if exc.permanent or attempt == attempts:
                    raise
                wait = self._backoff * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
                logger.info("graph %s %s: %s; again in %.1f s", method, path, exc.reason, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _once(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None,
        form: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
    ) -> Mapping[str, Any]:
        data: aiohttp.FormData | None = None
        if form is not None:
            data = aiohttp.FormData()
            for name, value in form.items():
                if isinstance(value, tuple):
                    filename, content_type, payload = value
                    data.add_field(name, payload, filename=filename, content_type=content_type)
                else:
                    data.add_field(name, str(value))
        try:
            async with self._http.request(
                method,
                f"{self.root}/{path.lstrip('/')}",
                json=json,
                data=data,
                params=params,
                headers=self._auth,
            ) as response:
                status = response.status
                try:
                    payload = await response.json(content_type=None)
                except ValueError:
                    payload = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = self.scrub(f"{type(exc).__name__}: {exc}")
            raise GraphError(f"Meta unreachable: {reason}", code=None, permanent=False) from exc
        if status >= 400 or not isinstance(payload, Mapping):
            error = classify(status, payload)
            error.reason = self.scrub(error.reason)
            raise error
        return payload

    async def download(self, url: str, *, limit: int, authorized: bool) -> Media:
        """The bytes at `url` (a media URL Meta gave), at most `limit` of them. `authorized`
        sends the token (WhatsApp's media URLs need it; Messenger's CDN links must not get it)."""
        headers = self._auth if authorized else None
        try:
            async with self._http.get(url, headers=headers) as response:
                if response.status >= 400:
                    raise GraphError(
                        f"media download answered HTTP {response.status}",
                        code=None,
                        permanent=False,
                    )
                if response.content_length is not None and response.content_length > limit:
                    raise MediaTooBig(response.content_length)
                body = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > limit:
                        raise MediaTooBig(len(body))
                return Media(bytes(body), response.content_type or "application/octet-stream")
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = self.scrub(f"{type(exc).__name__}: {exc}")
            raise GraphError(
                f"media download failed: {reason}", code=None, permanent=False
            ) from exc


class MediaTooBig(Exception):
    """A media file over the channel's limit: listed, not stored."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size
