"""Signed visitor tokens, upload receipts and file download tokens for the website chat:
HMAC-SHA256, stateless, so a visitor is recognized on any web node and after a restart."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time

_VISITOR = re.compile(r"^v[A-Za-z0-9_-]{16,40}$")
_B64 = re.compile(r"^[A-Za-z0-9_-]{1,700}$")
MAX_FILE_TOKEN = 1000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key() -> str:
    """A fresh signing key, for when config names none (kept through the cursor store)."""
    return secrets.token_urlsafe(32)


class Signer:
    """Signs what the widget holds for the visitor; `scope` (the channel name) keeps one
    channel's tokens from opening another's chats."""

    def __init__(self, key: str, scope: str) -> None:
        self._key = key.encode()
        self._scope = scope

    def _mac(self, *parts: str) -> str:
        message = "\x1f".join((self._scope, *parts)).encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def issue(self, visitor: str | None = None) -> tuple[str, str]:
        """A (visitor id, token) pair; a new visitor id unless one is given."""
        visitor = visitor or "v" + secrets.token_urlsafe(16)
        issued = str(int(time.time()))
        return visitor, f"{visitor}.{issued}.{self._mac('visitor', visitor, issued)}"

    def visitor(self, token: object) -> str | None:
        """The visitor id a token was issued for, or None if it is not one of ours."""
        if not isinstance(token, str) or len(token) > 200:
            return None
        parts = token.split(".")
        if len(parts) != 3 or not _VISITOR.match(parts[0]) or not parts[1].isdigit():
            return None
        visitor, issued, mac = parts
        if not hmac.compare_digest(mac, self._mac("visitor", visitor, issued)):
            return None
        return visitor

    def receipt(self, visitor: str, client_id: str, url: str, filename: str, kind: str) -> str:
        """Proof that `visitor` uploaded the file at `url` for message `client_id`."""
        return self._mac("upload", visitor, client_id, url, filename, kind)

    def check_receipt(
        self, receipt: object, visitor: str, client_id: str, url: str, filename: str, kind: str
    ) -> bool:
        if not isinstance(receipt, str):
            return False
        return hmac.compare_digest(receipt, self.receipt(visitor, client_id, url, filename, kind))

    def file_token(self, visitor: str, url: str, expires: int) -> str:
        """Lets `visitor` download the file at `url` (a blob store URL) until `expires` (Unix
        seconds). URL-safe: it is a path segment of the download link."""
        mac = self._mac("file", visitor, str(expires), url)
        return f"{visitor}.{expires}.{_b64(url.encode())}.{mac}"

    def file(self, token: str, *, now: float | None = None) -> tuple[str, str] | None:
        """The (visitor, blob URL) a download token was issued for, or None when it is not one
        of ours (forged, for another channel, altered) or has expired."""
        if len(token) > MAX_FILE_TOKEN:
            return None
        parts = token.split(".")
        if len(parts) != 4 or not _VISITOR.match(parts[0]) or not parts[1].isdigit():
            return None
        visitor, expires, encoded, mac = parts
        if not _B64.match(encoded):
            return None
        try:
            url = _unb64(encoded).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(mac, self._mac("file", visitor, expires, url)):
            return None
        if int(expires) < (time.time() if now is None else now):
            return None
        return visitor, url
