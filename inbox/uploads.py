"""What an agent may attach to a reply: size limits, the content-type policy (sniffed from the
bytes, never taken from the client), and a file name that is safe in a header and on disk."""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024
OCTET_STREAM = "application/octet-stream"

EXECUTABLE_TYPES = frozenset(
    {
        "application/vnd.microsoft.portable-executable",
        "application/x-executable",
        "application/x-mach-binary",
        "application/x-msi",
        "application/wasm",
        "text/x-shellscript",
    }
)
"""Refused whatever `allowed_types` says: programs, by their bytes."""

DEFAULT_ALLOWED = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/heic",
    "application/pdf",
    "text/plain",
    "text/csv",
    "text/markdown",
    "application/json",
    "application/zip",
    "application/vnd.rar",
    "application/x-7z-compressed",
    "application/gzip",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.*",
    "application/vnd.oasis.opendocument.*",
    "audio/*",
    "video/mp4",
)

DEFAULT_BLOCKED_EXTENSIONS = (
    "exe", "dll", "com", "bat", "cmd", "msi", "msp", "scr", "pif", "cpl", "sys", "drv",
    "jar", "js", "jse", "mjs", "vbs", "vbe", "wsf", "wsh", "ps1", "psm1", "hta", "lnk",
    "reg", "sh", "bash", "zsh", "csh", "command", "app", "apk", "deb", "rpm", "dmg", "pkg",
    "iso", "img", "vhd", "vhdx", "msc", "gadget", "scf", "url", "inf", "chm", "xll",
)  # fmt: skip


class UploadsConfig(BaseModel):
    """`server.uploads`: files agents attach to replies and notes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_file_bytes: int = Field(default=10 * MiB, ge=1)
    max_message_bytes: int = Field(default=20 * MiB, ge=1)
    """All files of one reply together (mail servers commonly refuse 25 MB after encoding)."""
    max_files: int = Field(default=10, ge=1, le=50)
    allowed_types: tuple[str, ...] = DEFAULT_ALLOWED
    """Content types as sniffed from the bytes; `*` patterns allowed (`image/*`)."""
    blocked_extensions: tuple[str, ...] = DEFAULT_BLOCKED_EXTENSIONS
    """File name endings refused whatever the bytes look like (no leading dot)."""
    unsent_hours: float = Field(default=24.0, gt=0)
    """An upload not sent with a reply within this long is deleted."""


class Refused(Exception):
    """The file may not be attached; `status` is the HTTP status, the message says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Accepted:
    filename: str
    content_type: str


# Characters that could hide or reorder what a name says (an extension spoofed with U+202E),
# or break a header: bidi controls, BOM, line and paragraph separators. ZWNJ and ZWJ stay: a
# Persian name needs them.
_INVISIBLE = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff\u2028\u2029"
)
_RESERVED = re.compile(r'[<>:"|?*]')
MAX_NAME = 200


def safe_filename(raw: str) -> str:
    """The name without folders, control or direction-changing characters, or characters that
    Windows or a header would choke on; Persian and every other script kept (NFC)."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(
        ch
        for ch in name
        if ch not in _INVISIBLE and unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn")
    )
    name = " ".join(_RESERVED.sub("_", name).split()).strip(" .")
    if len(name) > MAX_NAME:
        stem, dot, extension = name.rpartition(".")
        keep = extension[:20] if dot and stem else ""
        name = name[: MAX_NAME - len(keep) - 1].rstrip(" .") + ("." + keep if keep else "")
    return name or "attachment"


def extension(filename: str) -> str:
    stem, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and stem else ""


_BY_EXTENSION = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "msi": "application/x-msi",
    "csv": "text/csv",
    "md": "text/markdown",
    "json": "application/json",
    "html": "text/html",
    "htm": "text/html",
    "svg": "image/svg+xml",
    "xml": "application/xml",
}
_TEXTUAL = ("text/", "image/svg", "application/json", "application/xml")
_MP4_BRANDS = (b"isom", b"iso2", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash")
_HEIC_BRANDS = (b"heic", b"heix", b"mif1", b"msf1")
_MACH_O = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")


def sniff(data: bytes, filename: str) -> str:
    """The content type the bytes show. The name only tells apart formats that share a
    container (a .docx is a zip, a .doc an OLE2 file) and kinds of plain text."""
    ext = extension(filename)
    head = data[:16]
    if head.startswith(b"MZ"):
        return "application/vnd.microsoft.portable-executable"
    if head.startswith(b"\x7fELF"):
        return "application/x-executable"
    if head.startswith(_MACH_O) or head.startswith(b"\xca\xfe\xba\xbe"):
        return "application/x-mach-binary"  # also a Java class: a program either way
    if head.startswith(b"\x00asm"):
        return "application/wasm"
    if head.startswith(b"#!"):
        return "text/x-shellscript"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _HEIC_BRANDS:
            return "image/heic"
        if brand == b"M4A ":
            return "audio/mp4"
        if brand in _MP4_BRANDS:
            return "video/mp4"
        return OCTET_STREAM
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        found = _BY_EXTENSION.get(ext, "")
        return found if found.startswith("application/vnd.") else "application/zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):  # OLE2: old Office, and .msi
        return _BY_EXTENSION.get(ext, "") if ext in ("doc", "xls", "ppt", "msi") else OCTET_STREAM
    if head.startswith(b"Rar!\x1a\x07"):
        return "application/vnd.rar"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "application/x-7z-compressed"
    if head.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if _looks_like_text(data[:8192]):
        found = _BY_EXTENSION.get(ext, "")
        return found if found.startswith(_TEXTUAL) else "text/plain"
    return OCTET_STREAM


_TEXT_CONTROLS = (0x09, 0x0A, 0x0C, 0x0D)


def _looks_like_text(sample: bytes) -> bool:
    """No NUL and no control characters but tab and line breaks: UTF-8 or a legacy code page
    (Persian text files are often Windows-1256)."""
    if not sample:
        return False
    return not any((b < 0x20 and b not in _TEXT_CONTROLS) or b == 0x7F for b in sample)


def check(data: bytes, raw_name: str, config: UploadsConfig) -> Accepted:
    """Accept one file under the policy, or raise `Refused` saying why (the size limits are
    enforced while reading; this checks what the file is)."""
    filename = safe_filename(raw_name)
    if not data:
        raise Refused(422, f"{filename}: the file is empty")
    if len(data) > config.max_file_bytes:
        raise Refused(413, f"{filename}: larger than {config.max_file_bytes} bytes")
    ext = extension(filename)
    if ext in {blocked.lower().lstrip(".") for blocked in config.blocked_extensions}:
        raise Refused(415, f"{filename}: .{ext} files may not be attached")
    content_type = sniff(data, filename)
    if content_type in EXECUTABLE_TYPES:
        raise Refused(415, f"{filename}: programs may not be attached")
    if not any(fnmatch.fnmatchcase(content_type, pattern) for pattern in config.allowed_types):
        raise Refused(415, f"{filename}: files of type {content_type} may not be attached")
    return Accepted(filename=filename, content_type=content_type)
