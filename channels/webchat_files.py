"""What a chat visitor may upload (the type is sniffed from the bytes, never trusted from the
browser; executables are refused whatever they are called), and how files are served back."""

from __future__ import annotations

import re
from urllib.parse import quote

from channels.base import Rejected

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)
_EXECUTABLE: tuple[bytes, ...] = (
    b"MZ",  # Windows PE
    b"\x7fELF",
    b"#!",
    b"\xca\xfe\xba\xbe",  # Mach-O universal, Java class
    b"\xcf\xfa\xed\xfe",
    b"\xce\xfa\xed\xfe",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\x00asm",
)
_RISKY_NAME = re.compile(
    r"\.(exe|dll|com|bat|cmd|msi|scr|ps1|vbs|js|jar|sh|apk|app|elf|bin|html?|svg)$", re.I
)
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
_HEADER_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/;]')
SERVED_AS_IS = frozenset(
    ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain")
)
"""Types a download keeps (images also show as thumbnails); anything else, HTML and SVG above
all, is served as `application/octet-stream`."""


def sniff(data: bytes) -> str:
    """The content type the bytes show, `text/plain` for UTF-8 text, else
    `application/octet-stream`."""
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    if "\x00" in text or text.lstrip()[:1] == "<":
        return "application/octet-stream"  # markup is not plain text: it could render as a page
    return "text/plain"


def safe_filename(raw: str) -> str:
    name = _UNSAFE_NAME.sub("", raw).strip().strip(".")
    return name[:200] or "file"


def check_upload(data: bytes, filename: str, allowed: tuple[str, ...]) -> str:
    """The sniffed content type, or `Rejected(415)` for an executable or a type not allowed."""
    if not data:
        raise Rejected(400, "the file is empty")
    if data.startswith(_EXECUTABLE) or _RISKY_NAME.search(filename):
        raise Rejected(415, "executable files and scripts are not accepted")
    kind = sniff(data)
    if kind not in allowed:
        raise Rejected(415, f"files of this type are not accepted; allowed: {', '.join(allowed)}")
    return kind


def content_disposition(filename: str) -> str:
    """Always `attachment`, with an ASCII fallback name and the real one per RFC 6266 / 5987."""
    clean = _HEADER_UNSAFE.sub("_", filename).strip() or "file"
    fallback = clean.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(clean, safe='')}"


def download_headers(filename: str, content_type: str) -> dict[str, str]:
    """Headers for serving a chat file: downloaded, never rendered or run, whatever it holds."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in SERVED_AS_IS:
        kind = "application/octet-stream"
    elif kind == "text/plain":
        kind = "text/plain; charset=utf-8"
    return {
        "Content-Type": kind,
        "Content-Disposition": content_disposition(filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=3600",
        "Referrer-Policy": "no-referrer",
    }
