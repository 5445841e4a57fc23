"""Signed survey links for channels without buttons (email, web forms answered by email): the
key they are signed with, kept in the database, and signing and checking a link's token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage.models import ChannelCursor, utcnow

KEY_OWNER, KEY_NAME = "pishkhan.csat", "link-key"
"""Where the link-signing key is kept (`channel_cursors`): generated once, shared by every
process that reads the same database, never written in a file."""
LINK_PATH = "/csat/"
_TOKEN = re.compile(r"^([1-9][0-9]{0,17})\.([A-Za-z0-9_-]{16,64})\.([A-Za-z0-9_-]{43})$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def link_key(session: Session) -> bytes:
    """The key email links are signed with; made on first use and kept in the database (a
    concurrent first use keeps whichever was stored first)."""
    found = stored_link_key(session)
    if found is None:
        insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
        session.execute(
            insert(ChannelCursor)
            .values(
                channel=KEY_OWNER, key=KEY_NAME, value=secrets.token_hex(32), updated_at=utcnow()
            )
            .on_conflict_do_nothing()
        )
        found = stored_link_key(session)
    assert found is not None
    return bytes.fromhex(found)


def stored_link_key(session: Session) -> str | None:
    """The link-signing key, if one was made (hex)."""
    return session.scalar(
        select(ChannelCursor.value).where(
            ChannelCursor.channel == KEY_OWNER, ChannelCursor.key == KEY_NAME
        )
    )


def _mac(key: bytes, survey_id: int, nonce: str) -> str:
    message = f"csat\x1f{survey_id}\x1f{nonce}".encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def sign(key: bytes, survey_id: int, nonce: str) -> str:
    """The token of a survey's link: its id and nonce, signed."""
    return f"{survey_id}.{nonce}.{_mac(key, survey_id, nonce)}"


def verify(key: bytes, token: str) -> tuple[int, str] | None:
    """The (survey id, nonce) a token was signed for; None for anything we did not sign."""
    match = _TOKEN.match(token) if len(token) < 200 else None
    if match is None:
        return None
    survey_id, nonce = int(match.group(1)), match.group(2)
    if not hmac.compare_digest(match.group(3), _mac(key, survey_id, nonce)):
        return None
    return survey_id, nonce
