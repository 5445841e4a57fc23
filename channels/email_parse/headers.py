"""Reading headers leniently: encoded words, addresses, Message-IDs, dates."""

from __future__ import annotations

import base64
import binascii
import logging
import quopri
import re
import unicodedata
from datetime import UTC, datetime
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from channels.email_parse.charsets import decode_bytes, normalize_charset, unescape_surrogates

logger = logging.getLogger(__name__)

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_WS_BETWEEN_WORDS = re.compile(r"(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[bBqQ]\?)")


def _decode_word_bytes(encoding: str, payload: str) -> bytes:
    if encoding in "bB":
        cleaned = re.sub(r"[^A-Za-z0-9+/]", "", payload)
        cleaned += "=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return payload.encode("ascii", errors="replace")
    return quopri.decodestring(payload.replace("_", " ").encode("ascii", errors="replace"))


def decode_header_value(value: str | None) -> str:
    """RFC 2047 encoded words and raw 8-bit bytes → text; whitespace folded. Never raises."""
    if not value:
        return ""
    value = unescape_surrogates(str(value))
    value = _WS_BETWEEN_WORDS.sub(r"\1", value)
    # adjacent words in the same charset may split a multi-byte character: decode them together
    pieces: list[tuple[str | None, bytes | str]] = []
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        if match.start() > pos:
            pieces.append((None, value[pos : match.start()]))
        charset = normalize_charset(match.group(1)) or "utf-8"
        chunk = _decode_word_bytes(match.group(2), match.group(3))
        if pieces and pieces[-1][0] == charset and isinstance(pieces[-1][1], bytes):
            pieces[-1] = (charset, pieces[-1][1] + chunk)
        else:
            pieces.append((charset, chunk))
        pos = match.end()
    pieces.append((None, value[pos:]))
    out = "".join(
        decode_bytes(part, charset) if isinstance(part, bytes) else part for charset, part in pieces
    )
    out = "".join(ch for ch in out if ch in "\t " or unicodedata.category(ch) != "Cc")
    return " ".join(out.split())


def raw_header(msg: Message, name: str) -> str | None:
    """The header's raw value (first occurrence), bypassing the policy's strict parsing."""
    lname = name.lower()
    try:
        for key, value in msg.raw_items():  # type: ignore[attr-defined]
            if key.lower() == lname:
                return str(value)
    except Exception:  # a broken header list must not stop the parse
        logger.debug("raw header %s unreadable", name, exc_info=True)
    return None


def raw_headers(msg: Message, name: str) -> list[str]:
    lname = name.lower()
    try:
        return [str(v) for k, v in msg.raw_items() if k.lower() == lname]  # type: ignore[attr-defined]
    except Exception:
        return []


_ADDR_RE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)


def parse_addresses(value: str | None) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs from an address header, leniently."""
    if not value:
        return []
    value = unescape_surrogates(value)
    try:
        pairs = getaddresses([value])
    except Exception:
        pairs = []
    out = [
        (decode_header_value(name).strip("\"' "), addr.strip().lower())
        for name, addr in pairs
        if "@" in addr
    ]
    if not out:  # getaddresses gave up (strict mode on odd input): find what looks like one
        out = [("", m.group(0).lower()) for m in _ADDR_RE.finditer(value)]
        if len(out) == 1:
            name = _ADDR_RE.sub("", value).replace("<", "").replace(">", "")
            out = [(decode_header_value(name).strip("\"' "), out[0][1])]
    return out


_MSGID_RE = re.compile(r"<([^<>\s]+)>")


def normalize_message_id(value: str | None) -> str | None:
    """`<id@host>`, whatever the brackets and whitespace around it; None when there is none."""
    if not value:
        return None
    value = unescape_surrogates(value)
    match = _MSGID_RE.search(value)
    if match:
        return f"<{match.group(1)}>"
    tokens = value.strip().strip("<>").split()
    # a single bare token is an id without its brackets; several words are not an id
    return f"<{tokens[0]}>" if len(tokens) == 1 and len(tokens[0]) < 998 else None


def message_ids(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    value = unescape_surrogates(value)
    found = [f"<{m}>" for m in _MSGID_RE.findall(value)]
    if not found:
        found = [f"<{tok.strip('<>,')}>" for tok in value.split() if tok.strip("<>,")]
    return tuple(dict.fromkeys(found))


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(unescape_surrogates(value).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
