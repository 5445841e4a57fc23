"""Decoding bytes of a declared, missing or wrong charset into the most plausible text."""

from __future__ import annotations

import codecs
import re
import unicodedata

_CHARSET_ALIASES = {
    "": None,
    "unknown-8bit": None,
    "x-unknown": None,
    "unknown": None,
    "default": None,
    "us-ascii": None,  # 8-bit bytes under "us-ascii" are always mislabelled
    "ascii": None,
    "utf8": "utf-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "iso-8859-1": "windows-1252",  # what senders labelled latin-1 actually use
    "latin1": "windows-1252",
    "iso-8859-8-i": "iso-8859-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-mac-arabic": "mac-arabic",
    "arabic": "iso-8859-6",
    "cp-1256": "windows-1256",
}

# Tried, in this order, when the declared charset does not decode the bytes cleanly.
_FALLBACK_CHARSETS = ("utf-8", "windows-1256", "iso-8859-6", "windows-1252")

ARABIC_LETTER = re.compile(r"[\u0621-\u064a\u0660-\u0669\u066e-\u06d3\u06f0-\u06f9\u06cc\u06a9]")


def normalize_charset(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    if "*" in name:  # RFC 2231 language suffix inside an encoded word: utf-8*fa
        name = name.split("*", 1)[0]
    if name in _CHARSET_ALIASES:
        return _CHARSET_ALIASES[name]
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _plausibility(text: str) -> float:
    """How much `text` looks like real writing rather than mojibake (higher is better).

    Letters score, control and private-use characters cost, and a word that switches between
    Arabic script and Latin letters (the shape of a wrong charset guess) costs most.
    """
    score = 0.0
    prev = "O"
    for ch in text:
        code = ord(ch)
        if 0x0600 <= code <= 0x06FF or 0xFB50 <= code <= 0xFEFF:
            cls = "A" if ch.isalpha() else "O"
            score += 1.0
        elif code < 0x80:
            cls = "L" if ch.isalpha() else "O"
            score += 1.0 if (ch.isprintable() or ch in "\n\r\t") else -3.0
        elif 0x80 <= code <= 0x9F or ch == "\ufffd" or 0xE000 <= code <= 0xF8FF:
            cls = "O"
            score -= 3.0
        elif ch.isalpha():
            cls = "X"
            score += 0.3
        else:
            cls = "O"
            score -= 1.0 if unicodedata.category(ch).startswith(("S", "C")) else 0.0
        if {prev, cls} in ({"A", "L"}, {"A", "X"}):
            score -= 2.0
        prev = cls
    return score


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode `data` trusting `declared` only as far as the bytes agree with it.

    Valid UTF-8 wins over any legacy label (mislabelled UTF-8 is the common case); otherwise the
    declared charset and the usual suspects for Persian and Arabic mail are scored for
    plausibility. Never raises; the last resort replaces undecodable bytes.
    """
    charset = normalize_charset(declared)
    if not data:
        return ""
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # UTF-8 with a few damaged bytes (a truncated part, a flipped bit) is still UTF-8
    high = sum(1 for byte in data if byte >= 0x80)
    lenient = data.decode("utf-8", errors="replace")
    if high >= 8 and lenient.count("\ufffd") * 20 <= high:
        return lenient
    candidates: list[tuple[float, int, str]] = []
    order = [charset] if charset and charset != "utf-8" else []
    order += [c for c in _FALLBACK_CHARSETS if c not in order and c != "utf-8"]
    for rank, name in enumerate(order):
        try:
            text = data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        # the declared charset wins ties: it is only overruled by clearly better text
        bonus = 0.5 if rank == 0 and name == charset else 0.0
        candidates.append((_plausibility(text) + bonus, -rank, text))
    if candidates:
        return max(candidates)[2]
    return data.decode(charset or "utf-8", errors="replace")


def unescape_surrogates(value: str) -> str:
    """Headers with raw 8-bit bytes arrive as surrogate escapes; decode them for real."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    try:
        raw = value.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", errors="replace").decode("utf-8", errors="replace")
    return decode_bytes(raw)
