"""Walking the MIME tree: the text and HTML bodies, attachments, inline images, reports."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import quopri
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser

from channels.email_parse.charsets import decode_bytes, unescape_surrogates
from channels.email_parse.headers import decode_header_value, raw_header
from channels.email_parse.html_text import unflow
from channels.email_parse.parsed import POLICY, MailPart
from channels.email_parse.quotes import BIDI


@dataclass(slots=True)
class Collected:
    texts: list[str]
    htmls: list[str]
    parts: list[MailPart]
    reports: list[Message]  # message/delivery-status and disposition-notification parts
    returned: list[Message]  # the original message (or its headers) inside a report


def safely(fn: object, default: object = None) -> object:
    try:
        return fn()  # type: ignore[operator]
    except Exception:
        return default


def content_type_of(part: Message) -> str:
    value = safely(part.get_content_type, "application/octet-stream")
    return str(value) if value else "application/octet-stream"


def _disposition(part: Message) -> str | None:
    raw = raw_header(part, "Content-Disposition")
    if not raw:
        return None
    return raw.split(";", 1)[0].strip().lower() or None


def _charset(part: Message) -> str | None:
    value = safely(lambda: part.get_param("charset"))
    if isinstance(value, tuple):  # RFC 2231 form
        value = value[2]
    return str(value) if value else None


def payload_bytes(part: Message) -> bytes:
    """The decoded body of a leaf part; tolerant of bad base64 and unknown encodings."""
    cte = (raw_header(part, "Content-Transfer-Encoding") or "").strip().lower()
    if cte in {"base64", "quoted-printable"}:
        # the stored payload: ASCII with 8-bit bytes as surrogate escapes (get_payload would
        # decode it with the declared charset, losing bytes of a mislabelled one)
        raw = getattr(part, "_payload", "")
        if isinstance(raw, str):
            raw_bytes = raw.encode("ascii", errors="surrogateescape")
        elif isinstance(raw, bytes | bytearray):
            raw_bytes = bytes(raw)
        else:
            raw_bytes = b""
        if cte == "quoted-printable":
            return quopri.decodestring(raw_bytes)
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", raw_bytes.split(b"=", 1)[0])
        if len(cleaned) % 4 == 1:  # a lone trailing character carries no whole byte
            cleaned = cleaned[:-1]
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return raw_bytes
    try:
        decoded = part.get_payload(decode=True)
    except Exception:
        decoded = None
    return decoded if isinstance(decoded, bytes) else b""


_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def _clean_filename(name: str, content_type: str, index: int) -> str:
    name = decode_header_value(name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = BIDI.sub("", _UNSAFE_FILENAME.sub("_", name)).strip(" .")
    while len(name.encode("utf-8")) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:-1] + dot + ext) if stem and len(ext) < 10 else name[:-1]
    if name:
        return name
    if content_type in {"text/rfc822-headers", "text/global-headers"}:
        return f"original-headers-{index}.txt"
    ext = mimetypes.guess_extension(content_type) or ".bin"
    if content_type == "message/rfc822":
        ext = ".eml"
    return f"attachment-{index}{ext}"


def _filename(part: Message) -> str:
    for getter in (
        lambda: part.get_filename(),
        lambda: part.get_param("name"),
    ):
        value = safely(getter)
        if isinstance(value, tuple):
            charset, _lang, text = value
            value = decode_bytes(str(text).encode("latin-1", errors="replace"), charset)
        if value:
            return unescape_surrogates(str(value))
    return ""


def _normalize_cid(value: str | None) -> str | None:
    if not value:
        return None
    value = "".join(unescape_surrogates(value).split()).strip("<>")
    return value or None


_REPORT_TYPES = {
    "message/delivery-status",
    "message/disposition-notification",
    "message/global-delivery-status",
    "message/global-disposition-notification",
}


class Walker:
    def __init__(self, max_attachment_bytes: int) -> None:
        self.limit = max_attachment_bytes
        self.out = Collected([], [], [], [], [])

    def walk(self, part: Message, *, in_related: bool = False, depth: int = 0) -> None:
        if depth > 40:  # a maliciously deep tree; what is above is enough
            return
        ctype = content_type_of(part)
        if part.is_multipart() and ctype.startswith("multipart/"):
            children = safely(part.get_payload, [])
            if not isinstance(children, list):
                return
            if ctype == "multipart/alternative":
                self._alternative(children, depth)
                return
            related = ctype == "multipart/related"
            for child in children:
                if isinstance(child, Message):
                    self.walk(child, in_related=related or in_related, depth=depth + 1)
            return
        if ctype in _REPORT_TYPES:
            self.out.reports.append(part)
            return
        if ctype in {"message/rfc822", "message/global"}:
            self._forwarded(part)
            return
        if ctype in {"text/rfc822-headers", "text/global-headers"}:
            headers = BytesHeaderParser(policy=POLICY).parsebytes(payload_bytes(part))
            self.out.returned.append(headers)
        disposition = _disposition(part)
        filename = _filename(part)
        if ctype in {"text/plain", "text/html"} and disposition != "attachment" and not filename:
            text = decode_bytes(payload_bytes(part), _charset(part) or _html_meta_charset(part))
            if ctype == "text/html":
                self.out.htmls.append(text)
            else:
                fmt = str(safely(lambda: part.get_param("format")) or "").lower()
                if fmt == "flowed":
                    delsp = str(safely(lambda: part.get_param("delsp")) or "").lower() == "yes"
                    text = unflow(text.replace("\r\n", "\n"), delsp=delsp)
                self.out.texts.append(text)
            return
        cid = _normalize_cid(raw_header(part, "Content-ID"))
        inline = disposition == "inline" or (disposition is None and cid is not None and in_related)
        self._attach(part, ctype, filename, cid, inline=inline and ctype.startswith("image/"))

    def _alternative(self, children: list[object], depth: int) -> None:
        # the last alternative is the richest; take the best text and the best HTML from it
        sub = Walker(self.limit)
        chosen_text: list[str] | None = None
        chosen_html: list[str] | None = None
        for child in children:
            if not isinstance(child, Message):
                continue
            sub.out = Collected([], [], [], [], [])
            sub.walk(child, depth=depth + 1)
            if sub.out.texts:
                chosen_text = sub.out.texts
            if sub.out.htmls:
                chosen_html = sub.out.htmls
                # inline images belong to the HTML alternative (multipart/related inside)
            self.out.parts.extend(sub.out.parts)
            self.out.reports.extend(sub.out.reports)
            self.out.returned.extend(sub.out.returned)
        self.out.texts.extend(chosen_text or [])
        self.out.htmls.extend(chosen_html or [])

    def _forwarded(self, part: Message) -> None:
        payload = safely(part.get_payload, None)
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            self.out.returned.append(inner)
            data = safely(inner.as_bytes, b"")
            subject = decode_header_value(raw_header(inner, "Subject"))
        else:
            data = payload_bytes(part)
            subject = ""
        name = _filename(part) or (f"{subject[:80]}.eml" if subject else "forwarded-message.eml")
        index = len(self.out.parts) + 1
        blob = data if isinstance(data, bytes) else b""
        self.out.parts.append(
            self._make_part(
                _clean_filename(name, "message/rfc822", index),
                "message/rfc822",
                blob,
                None,
                inline=False,
            )
        )

    def _attach(
        self, part: Message, ctype: str, filename: str, cid: str | None, *, inline: bool
    ) -> None:
        index = len(self.out.parts) + 1
        name = _clean_filename(filename, ctype, index)
        self.out.parts.append(self._make_part(name, ctype, payload_bytes(part), cid, inline=inline))

    def _make_part(
        self, name: str, ctype: str, data: bytes, cid: str | None, *, inline: bool
    ) -> MailPart:
        size = len(data)
        if size > self.limit:
            note = (
                f"Not stored: {name} is {size:,} bytes, over the "
                f"{self.limit:,}-byte attachment limit."
            )
            return MailPart(name, ctype, size, None, cid, inline, note)
        return MailPart(name, ctype, size, data, cid, inline)


_META_CHARSET = re.compile(rb"<meta[^>]+charset=[\"']?([\w.:-]+)", re.IGNORECASE)


def _html_meta_charset(part: Message) -> str | None:
    if content_type_of(part) != "text/html":
        return None
    match = _META_CHARSET.search(payload_bytes(part)[:4096])
    return match.group(1).decode("ascii") if match else None
