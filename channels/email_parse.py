"""Turns raw RFC 5322 mail into a `ParsedMail`: decoded text, sanitized HTML, attachments, kind.

Pure functions, no I/O: the email transport (`channels/email.py`) fetches bytes and calls
`parse_mail`. Nothing here raises on bad mail; a broken header or part degrades to a best-effort
value and the rest of the message still comes through.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.policy
import logging
import mimetypes
import quopri
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Literal

import nh3

logger = logging.getLogger(__name__)

Kind = Literal["message", "auto_reply", "bounce", "delivery_report"]

# compat32 keeps headers as raw strings: every header is decoded leniently here, and skipping
# the default policy's structured header parsing makes a parse about three times faster.
_POLICY = email.policy.compat32


@dataclass(frozen=True, slots=True)
class MailPart:
    """An attachment or inline image.

    `content_id` is stored without angle brackets, as a `cid:` URL in the HTML names it.
    `data` is None when the part is larger than the limit; `note` then says so.
    """

    filename: str
    content_type: str
    size: int
    data: bytes | None
    content_id: str | None
    inline: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class BounceReport:
    """What a delivery report says about one of our messages.

    Filled for `kind == "bounce"` (a failure) and also for `kind == "delivery_report"` (a DSN
    "delivered"/"relayed"/"delayed", an MDN read receipt), where `permanent` is False and
    `diagnostic` holds the action or disposition ("delivered", "displayed").
    """

    original_message_id: str | None
    recipient: str | None
    status: str | None
    diagnostic: str
    permanent: bool


@dataclass(frozen=True, slots=True)
class ParsedMail:
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    from_name: str
    from_address: str
    reply_to: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    date: datetime | None
    text: str
    full_text: str
    html: str
    attachments: tuple[MailPart, ...]
    kind: Kind
    bounce: BounceReport | None
    language_hint: str | None = None


# --------------------------------------------------------------------------------------------
# Charsets


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

_ARABIC_LETTER = re.compile(r"[\u0621-\u064a\u0660-\u0669\u066e-\u06d3\u06f0-\u06f9\u06cc\u06a9]")


def _normalize_charset(charset: str | None) -> str | None:
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
    charset = _normalize_charset(declared)
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


def _unescape_surrogates(value: str) -> str:
    """Headers with raw 8-bit bytes arrive as surrogate escapes; decode them for real."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    try:
        raw = value.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", errors="replace").decode("utf-8", errors="replace")
    return decode_bytes(raw)


# --------------------------------------------------------------------------------------------
# Headers

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
    value = _unescape_surrogates(str(value))
    value = _WS_BETWEEN_WORDS.sub(r"\1", value)
    # adjacent words in the same charset may split a multi-byte character: decode them together
    pieces: list[tuple[str | None, bytes | str]] = []
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        if match.start() > pos:
            pieces.append((None, value[pos : match.start()]))
        charset = _normalize_charset(match.group(1)) or "utf-8"
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


def _raw_header(msg: Message, name: str) -> str | None:
    """The header's raw value (first occurrence), bypassing the policy's strict parsing."""
    lname = name.lower()
    try:
        for key, value in msg.raw_items():  # type: ignore[attr-defined]
            if key.lower() == lname:
                return str(value)
    except Exception:  # a broken header list must not stop the parse
        logger.debug("raw header %s unreadable", name, exc_info=True)
    return None


def _raw_headers(msg: Message, name: str) -> list[str]:
    lname = name.lower()
    try:
        return [str(v) for k, v in msg.raw_items() if k.lower() == lname]  # type: ignore[attr-defined]
    except Exception:
        return []


_ADDR_RE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)


def _addresses(value: str | None) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs from an address header, leniently."""
    if not value:
        return []
    value = _unescape_surrogates(value)
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
    value = _unescape_surrogates(value)
    match = _MSGID_RE.search(value)
    if match:
        return f"<{match.group(1)}>"
    tokens = value.strip().strip("<>").split()
    # a single bare token is an id without its brackets; several words are not an id
    return f"<{tokens[0]}>" if len(tokens) == 1 and len(tokens[0]) < 998 else None


def _message_ids(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    value = _unescape_surrogates(value)
    found = [f"<{m}>" for m in _MSGID_RE.findall(value)]
    if not found:
        found = [f"<{tok.strip('<>,')}>" for tok in value.split() if tok.strip("<>,")]
    return tuple(dict.fromkeys(found))


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(_unescape_surrogates(value).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# HTML


_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "center", "tfoot", "big", "address"}
_ATTRIBUTES: dict[str, set[str]] = {
    tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()
}
_ATTRIBUTES["*"] = {"dir", "lang", "style", "title", "align"}
_ATTRIBUTES["font"] = {"color", "face", "size"}
_ATTRIBUTES.setdefault("td", set()).update({"valign", "width", "height", "bgcolor"})
_ATTRIBUTES.setdefault("th", set()).update({"valign", "width", "height", "bgcolor"})
_ATTRIBUTES.setdefault("table", set()).update(
    {"width", "border", "cellpadding", "cellspacing", "bgcolor"}
)
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "text-align", "text-decoration", "text-indent", "direction", "unicode-bidi",
    "margin", "margin-top", "margin-bottom", "margin-left", "margin-right", "padding",
    "padding-top", "padding-bottom", "padding-left", "padding-right", "border", "border-top",
    "border-bottom", "border-left", "border-right", "border-color", "border-style",
    "border-width", "border-collapse", "width", "height", "max-width", "line-height",
    "vertical-align", "white-space", "display", "list-style-type",
}  # fmt: skip
_SAFE_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);", re.IGNORECASE)


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    lowered = value.strip().lower()
    if attr == "style" and ("url(" in lowered or "expression" in lowered or "@import" in lowered):
        return None
    if lowered.startswith("data:") and not (tag == "img" and _SAFE_DATA_IMAGE.match(lowered)):
        return None
    return value


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"script", "style", "title"},
    attributes=_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    url_schemes={"http", "https", "mailto", "tel", "cid", "data"},
    link_rel="noopener noreferrer nofollow",
    filter_style_properties=_STYLE_PROPERTIES,
    strip_comments=True,
)

_IMG_TAG = re.compile(r"<img\b(?:[^>\"]|\"[^\"]*\")*>", re.IGNORECASE)
_REMOTE_SRC = re.compile(r"\ssrc=\"((?:https?:)?//[^\"]*)\"", re.IGNORECASE)


def sanitize_html(html: str) -> str:
    """nh3-cleaned HTML; remote images keep their URL in `data-src` and load only on request.

    Scripts, styles, event handlers and `javascript:` URLs are removed; `cid:` and small
    `data:image/*` sources stay.
    """
    if not html.strip():
        return ""
    try:
        cleaned = _CLEANER.clean(html).strip()
    except Exception:
        logger.warning("HTML sanitizer failed; dropping the HTML body", exc_info=True)
        return ""

    def neutralize(match: re.Match[str]) -> str:
        return _REMOTE_SRC.sub(r' data-src="\1"', match.group(0))

    return _IMG_TAG.sub(neutralize, cleaned)


_BLOCK_TAGS = {
    "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
    "pre", "hr", "blockquote", "section", "article", "header", "footer", "dt", "dd", "address",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "head", "title", "template", "noscript"}


class _TextExtractor(HTMLParser):
    """HTML → readable text; `<blockquote>` becomes `> ` quoting so quote folding sees it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.depth = 0  # blockquote nesting
        self.skip = 0
        self.pre = 0

    def _break(self) -> None:
        line = "".join(self.current)
        line = line if self.pre else " ".join(line.split())
        prefix = "> " * self.depth
        self.lines.append((prefix + line).rstrip() if line or self.depth else "")
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in _BLOCK_TAGS:
            if self.current or tag == "br":
                self._break()
            if tag == "blockquote":
                self.depth += 1
            elif tag == "pre":
                self.pre += 1
            elif tag == "li":
                self.current.append("- ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.current.append(f"[{alt}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            if self.current:
                self._break()
            if tag == "blockquote":
                self.depth = max(0, self.depth - 1)
            elif tag == "pre":
                self.pre = max(0, self.pre - 1)
            elif tag in {"p", "table", "blockquote"}:
                self.lines.append("")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre and "\n" in data:
            first, *rest = data.split("\n")
            self.current.append(first)
            for piece in rest:
                self._break()
                self.current.append(piece)
        else:
            self.current.append(data.replace("\xa0", " "))

    def text(self) -> str:
        if self.current:
            self._break()
        return _tidy_text("\n".join(self.lines))


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient, but a broken document must not stop the parse
        logger.debug("HTML to text failed", exc_info=True)
    return parser.text()


def _tidy_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = [line.rstrip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue  # at most one blank line in a row
        out.append(line)
    return "\n".join(out).strip("\n")


def _unflow(text: str, *, delsp: bool) -> str:
    """RFC 3676 format=flowed: join soft line breaks (a line ending in a space)."""
    out: list[str] = []
    buffer = ""
    for line in text.split("\n"):
        if line.endswith(" ") and line != "-- ":
            buffer += line[:-1] if delsp else line
        else:
            out.append(buffer + line)
            buffer = ""
    if buffer:
        out.append(buffer)
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Quote and signature folding

_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_ATTRIBUTION = re.compile(
    r"^\s*(?:"
    r"On\s.{0,300}\bwrote\s*:"
    r"|در\s+تاریخ\s.{0,300}نوشت\s*:"
    r"|.{0,300}\sنوشت\s*:"
    r"|في\s.{0,300}كتب\s*:"
    r"|Le\s.{0,300}a\s+écrit\s*:"
    r"|Am\s.{0,300}schrieb\s.{0,200}:"
    r"|El\s.{0,300}escribió\s*:"
    r")\s*$",
    re.IGNORECASE,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|"
    r"پیام اصلی|پیغام اصلی|الرسالة الأصلية)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_FORWARD_MARKER = re.compile(
    r"^\s*-{2,}\s*(?:Forwarded message|Begin forwarded message|پیام بازارسال شده|"
    r"پیام هدایت شده|پیام فوروارد شده|رسالة مُعاد توجيهها)\s*-*\s*:?\s*$|"
    r"^\s*Begin forwarded message:\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(?:From|از|من|De|Von|Van)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_OTHER = re.compile(
    r"^\s*\*?(?:Sent|Date|To|Cc|Subject|ارسال شده|ارسال‌شده|تاریخ|به|رونوشت|موضوع|"
    r"تم الإرسال|التاريخ|إلى|الموضوع|Envoyé|Gesendet|Datum|Objet|Betreff|À|An)\s*:\*?",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_SIGNATURE_LINE = re.compile(
    r"^\s*(?:"
    r"Sent from my \w[\w\s-]{0,40}"
    r"|Sent from (?:Mail|Outlook|Yahoo Mail|Samsung|my mobile)[\w\s-]{0,40}"
    r"|Get Outlook for \w+"
    r"|Sent via \w[\w\s-]{0,40}"
    r"|ارسال\s*(?:\u200c)?\s*شده\s+(?:از|با)\s+.{1,40}"
    r"|فرستاده\s*شده\s+از\s+.{1,40}"
    r"|أرسلت من\s+.{1,40}|مرسل من\s+.{1,40}"
    r")\s*$",
    re.IGNORECASE,
)
_SIGNATURE_DELIMITER = re.compile(r"^--\s?$")


def _quote_start(lines: list[str]) -> int | None:
    """Index of the first line of quoted history, or None."""
    n = len(lines)
    for i, raw in enumerate(lines):
        line = _BIDI.sub("", raw)
        if _FORWARD_MARKER.match(line):
            return None  # a forwarded message is content the customer wants us to read
        if _ORIGINAL_MESSAGE.match(line):
            return i
        if _ATTRIBUTION.match(line) and not line.lstrip().startswith(">"):
            return i
        # "On Mon, 1 Jan 2024 at 10:00, Ali <ali@\nexample.com> wrote:" wrapped over two lines
        if i + 1 < n and re.match(r"^\s*(?:On|در تاریخ)\s", line):
            joined = line + " " + _BIDI.sub("", lines[i + 1])
            if _ATTRIBUTION.match(joined):
                return i
        if _HEADER_FROM.match(line):
            following = [_BIDI.sub("", x) for x in lines[i + 1 : i + 6] if x.strip()]
            if sum(1 for x in following[:4] if _HEADER_OTHER.match(x)) >= 2:
                start = i
                if i > 0 and _UNDERSCORES.match(lines[i - 1]):
                    start = i - 1
                return start
    # a trailing block of "> " lines (reply on top); inline replies keep their quotes
    last = n - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    if last < 0 or not lines[last].lstrip().startswith(">"):
        return None
    start = last
    while start > 0 and (lines[start - 1].lstrip().startswith(">") or not lines[start - 1].strip()):
        start -= 1
    while start < last and not lines[start].strip():
        start += 1
    if start > 0 and _BIDI.sub("", lines[start - 1]).rstrip().endswith(":"):
        start -= 1
    return start


def _signature_start(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        if i == 0:
            continue
        rest = [x for x in lines[i + 1 :] if x.strip()]
        if _SIGNATURE_DELIMITER.match(line) and len(rest) <= 20:
            return i
        if _SIGNATURE_LINE.match(_BIDI.sub("", line)) and len(rest) <= 4:
            return i
    return None


def fold_quotes(text: str) -> tuple[str, str]:
    """Split a reply into (what the sender wrote, quoted history and signature).

    Recognizes Gmail-style attributions ("On … wrote:", "در تاریخ … نوشت:"), Outlook's
    "-----Original Message-----" and "From:/Sent:" header blocks (English, Persian, Arabic),
    a trailing block of ">" quotes, and signatures ("-- ", "Sent from my iPhone",
    "ارسال شده از …"). Forwarded messages are kept. When folding would leave nothing, nothing
    is folded.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    cut = _quote_start(lines)
    body, history = (lines, []) if cut is None else (lines[:cut], lines[cut:])
    sig = _signature_start(body)
    if sig is not None:
        body, history = body[:sig], body[sig:] + history
    clean = "\n".join(body).strip()
    if not clean:
        return text.strip(), ""
    return clean, "\n".join(history).strip("\n")


# --------------------------------------------------------------------------------------------
# MIME structure


@dataclass(slots=True)
class _Collected:
    texts: list[str]
    htmls: list[str]
    parts: list[MailPart]
    reports: list[Message]  # message/delivery-status and disposition-notification parts
    returned: list[Message]  # the original message (or its headers) inside a report


def _safe(fn: object, default: object = None) -> object:
    try:
        return fn()  # type: ignore[operator]
    except Exception:
        return default


def _content_type(part: Message) -> str:
    value = _safe(part.get_content_type, "application/octet-stream")
    return str(value) if value else "application/octet-stream"


def _disposition(part: Message) -> str | None:
    raw = _raw_header(part, "Content-Disposition")
    if not raw:
        return None
    return raw.split(";", 1)[0].strip().lower() or None


def _charset(part: Message) -> str | None:
    value = _safe(lambda: part.get_param("charset"))
    if isinstance(value, tuple):  # RFC 2231 form
        value = value[2]
    return str(value) if value else None


def _payload_bytes(part: Message) -> bytes:
    """The decoded body of a leaf part; tolerant of bad base64 and unknown encodings."""
    cte = (_raw_header(part, "Content-Transfer-Encoding") or "").strip().lower()
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
    name = _BIDI.sub("", _UNSAFE_FILENAME.sub("_", name)).strip(" .")
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
        value = _safe(getter)
        if isinstance(value, tuple):
            charset, _lang, text = value
            value = decode_bytes(str(text).encode("latin-1", errors="replace"), charset)
        if value:
            return _unescape_surrogates(str(value))
    return ""


def _normalize_cid(value: str | None) -> str | None:
    if not value:
        return None
    value = "".join(_unescape_surrogates(value).split()).strip("<>")
    return value or None


_REPORT_TYPES = {
    "message/delivery-status",
    "message/disposition-notification",
    "message/global-delivery-status",
    "message/global-disposition-notification",
}


class _Walker:
    def __init__(self, max_attachment_bytes: int) -> None:
        self.limit = max_attachment_bytes
        self.out = _Collected([], [], [], [], [])

    def walk(self, part: Message, *, in_related: bool = False, depth: int = 0) -> None:
        if depth > 40:  # a maliciously deep tree; what is above is enough
            return
        ctype = _content_type(part)
        if part.is_multipart() and ctype.startswith("multipart/"):
            children = _safe(part.get_payload, [])
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
            headers = BytesHeaderParser(policy=_POLICY).parsebytes(_payload_bytes(part))
            self.out.returned.append(headers)
        disposition = _disposition(part)
        filename = _filename(part)
        if ctype in {"text/plain", "text/html"} and disposition != "attachment" and not filename:
            text = decode_bytes(_payload_bytes(part), _charset(part) or _html_meta_charset(part))
            if ctype == "text/html":
                self.out.htmls.append(text)
            else:
                fmt = str(_safe(lambda: part.get_param("format")) or "").lower()
                if fmt == "flowed":
                    delsp = str(_safe(lambda: part.get_param("delsp")) or "").lower() == "yes"
                    text = _unflow(text.replace("\r\n", "\n"), delsp=delsp)
                self.out.texts.append(text)
            return
        cid = _normalize_cid(_raw_header(part, "Content-ID"))
        inline = disposition == "inline" or (disposition is None and cid is not None and in_related)
        self._attach(part, ctype, filename, cid, inline=inline and ctype.startswith("image/"))

    def _alternative(self, children: list[object], depth: int) -> None:
        # the last alternative is the richest; take the best text and the best HTML from it
        sub = _Walker(self.limit)
        chosen_text: list[str] | None = None
        chosen_html: list[str] | None = None
        for child in children:
            if not isinstance(child, Message):
                continue
            sub.out = _Collected([], [], [], [], [])
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
        payload = _safe(part.get_payload, None)
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            self.out.returned.append(inner)
            data = _safe(inner.as_bytes, b"")
            subject = decode_header_value(_raw_header(inner, "Subject"))
        else:
            data = _payload_bytes(part)
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
        self.out.parts.append(
            self._make_part(name, ctype, _payload_bytes(part), cid, inline=inline)
        )

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
    if _content_type(part) != "text/html":
        return None
    match = _META_CHARSET.search(_payload_bytes(part)[:4096])
    return match.group(1).decode("ascii") if match else None


# --------------------------------------------------------------------------------------------
# Recognition: bounces, delivery reports, auto-replies

_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BOUNCE_SENDER = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification \(failure\)|delivery failure|"
    r"mail delivery failed|failure notice|returned mail|delivery has failed|"
    r"could not be delivered|non[- ]?delivery|delivery problem|"
    r"تحویل\s*داده\s*نشد|ارسال\s*نشد|عدم\s*تحویل",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(r"delay|warning: message|still being retried", re.IGNORECASE)
_BODY_MESSAGE_ID = re.compile(r"^\s*Message-ID\s*:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_PERMANENT_WORDS = re.compile(
    r"user unknown|does not exist|no such user|unknown user|mailbox unavailable|"
    r"address rejected|permanent|invalid recipient|not found|mailbox not found|"
    r"recipient address rejected|doesn't exist|disabled",
    re.IGNORECASE,
)


def _items(msg: Message) -> list[tuple[str, str]]:
    try:
        return [(str(k), str(v)) for k, v in msg.raw_items()]  # type: ignore[attr-defined]
    except Exception:
        return []


def _report_fields(report: Message) -> list[dict[str, str]]:
    """The field blocks of a message/delivery-status or disposition-notification part."""
    payload = _safe(report.get_payload, None)
    blocks: list[dict[str, str]] = []
    if isinstance(payload, list):
        for block in payload:
            if isinstance(block, Message):
                fields = {k.lower(): decode_header_value(v) for k, v in _items(block)}
                blocks.append(fields)
        if blocks:
            return blocks
    # unparsed (or base64-encoded) report text: blocks separated by blank lines
    text = decode_bytes(_payload_bytes(report))
    for chunk in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        parsed = BytesHeaderParser(policy=_POLICY).parsebytes(
            chunk.strip().encode("utf-8", errors="replace")
        )
        fields = {k.lower(): decode_header_value(str(v)) for k, v in parsed.raw_items()}  # type: ignore[attr-defined]
        if fields:
            blocks.append(fields)
    return blocks


def _typed_address(value: str | None) -> str | None:
    """`rfc822; user@example.com` → `user@example.com`."""
    if not value:
        return None
    address = value.split(";", 1)[-1].strip().strip("<>").strip()
    return address.lower() or None


def _original_id(collected: _Collected, body: str) -> str | None:
    for returned in collected.returned:
        found = normalize_message_id(_raw_header(returned, "Message-ID"))
        if found:
            return found
    match = _BODY_MESSAGE_ID.search(body)
    return match.group(1) if match else None


def _dsn_report(collected: _Collected, body: str) -> tuple[Kind, BounceReport] | None:
    for report in collected.reports:
        ctype = _content_type(report)
        blocks = _report_fields(report)
        if "disposition" in ctype:
            fields: dict[str, str] = {}
            for block in blocks:
                fields.update(block)
            disposition = fields.get("disposition", "")
            original = normalize_message_id(fields.get("original-message-id")) or _original_id(
                collected, body
            )
            return "delivery_report", BounceReport(
                original_message_id=original,
                recipient=_typed_address(
                    fields.get("final-recipient") or fields.get("original-recipient")
                ),
                status=None,
                diagnostic=disposition.split(";")[-1].strip() or disposition,
                permanent=False,
            )
        recipients = [b for b in blocks if "action" in b or "final-recipient" in b] or blocks[1:]
        if not recipients:
            continue
        failed = [b for b in recipients if b.get("action", "").lower().startswith("failed")]
        chosen = failed[0] if failed else recipients[0]
        action = chosen.get("action", "").lower().split()[0] if chosen.get("action") else ""
        status_match = _STATUS_RE.search(chosen.get("status", ""))
        status = status_match.group(0) if status_match else None
        diagnostic = chosen.get("diagnostic-code", "")
        if ";" in diagnostic:
            diagnostic = diagnostic.split(";", 1)[1].strip()
        kind: Kind = (
            "bounce"
            if action == "failed" or (not action and status and status[0] in "45")
            else "delivery_report"
        )
        return kind, BounceReport(
            original_message_id=_original_id(collected, body),
            recipient=_typed_address(
                chosen.get("final-recipient") or chosen.get("original-recipient")
            ),
            status=status,
            diagnostic=diagnostic or action or "",
            permanent=kind == "bounce" and (status or "5").startswith("5"),
        )
    return None


def _bounce_diagnostic(body: str, recipient: str | None) -> str:
    """The server's words in a free-form bounce: the status line, else what follows the address."""
    lines = [line.strip() for line in body.split("\n")]
    for line in lines:
        if _STATUS_RE.search(line) or re.search(r"\b[45]\d\d[\s-]", line):
            return line
    if recipient:
        for i, line in enumerate(lines):
            if recipient in line.lower():
                after = line.lower().split(recipient, 1)[1].strip(" >:")
                if after:
                    return line
                following = next((x for x in lines[i + 1 :] if x), "")
                return following
    return next((line for line in lines if _PERMANENT_WORDS.search(line)), "")


def _nonstandard_bounce(
    msg: Message, from_address: str, subject: str, collected: _Collected, body: str
) -> tuple[Kind, BounceReport] | None:
    return_path = (_raw_header(msg, "Return-Path") or "").strip()
    from_daemon = bool(_BOUNCE_SENDER.match(from_address)) or "mail delivery" in (
        decode_header_value(_raw_header(msg, "From")).lower()
    )
    bounce_subject = bool(_BOUNCE_SUBJECT.search(subject))
    null_sender = return_path in {"<>", "<<>>"}
    if not (from_daemon and (bounce_subject or null_sender)) and not (
        bounce_subject and (null_sender or _raw_header(msg, "X-Failed-Recipients"))
    ):
        return None
    delay = bool(_DELAY_SUBJECT.search(subject)) and not bounce_subject
    status_match = _STATUS_RE.search(body)
    status = status_match.group(0) if status_match else None
    failed = _raw_header(msg, "X-Failed-Recipients")
    recipient = _addresses(failed)[0][1] if failed and _addresses(failed) else None
    if recipient is None:
        match = re.search(r"<([^<>\s@]+@[^<>\s]+)>\s*:", body) or re.search(
            r"^\s*([^\s@<>:]+@[^\s<>:]+)\s*$", body, re.MULTILINE
        )
        recipient = match.group(1).lower() if match else None
    diagnostic = _bounce_diagnostic(body, recipient)
    if status:
        permanent = status.startswith("5")
    else:
        permanent = bool(_PERMANENT_WORDS.search(body)) or bool(re.search(r"\b5\d\d[\s-]", body))
    report = BounceReport(
        original_message_id=_original_id(collected, body),
        recipient=recipient,
        status=status,
        diagnostic=diagnostic or subject,
        permanent=permanent and not delay,
    )
    return ("delivery_report" if delay else "bounce"), report


_VACATION_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[\s-]?reply|auto:|autoreply|out of (?:the )?office|vacation|"
    r"away from|abwesenheit|réponse automatique|respuesta automática|"
    r"پاسخ\s*(?:\u200c)?\s*خودکار|خارج از دفتر|در مرخصی|رد تلقائي|الرد الآلي)",
    re.IGNORECASE,
)


_AUTO_REPLY_HEADERS = (
    "X-Autoreply",
    "X-Autorespond",
    "X-Autoresponse",
    "X-Autogenerated",
    "X-AutoReply-From",
    "X-Mail-Autoreply",
    "X-FC-MachineGenerated",
)


def _is_auto_reply(msg: Message, subject: str) -> bool:
    auto_submitted = (_raw_header(msg, "Auto-Submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    for name in _AUTO_REPLY_HEADERS:
        value = (_raw_header(msg, name) or "").strip().lower()
        if value and value not in {"no", "false", "0"}:
            return True
    precedence = (_raw_header(msg, "Precedence") or "").strip().lower()
    if precedence in {"bulk", "junk", "auto_reply", "auto-reply"}:
        return True
    if _VACATION_SUBJECT.search(subject):
        weak = (
            _raw_header(msg, "X-Auto-Response-Suppress")
            or (_raw_header(msg, "Return-Path") or "").strip() in {"<>", "<<>>"}
            or precedence == "list"
            or "vacation" in (_raw_header(msg, "X-Mailer") or "").lower()
        )
        return bool(weak)
    return False


# --------------------------------------------------------------------------------------------
# Language

_PERSIAN_ONLY = re.compile(r"[پچژگ]")
_PERSIAN_FORMS = re.compile(r"[یک]")
_ARABIC_ONLY = re.compile(r"[ةإأؤ]")
_ARABIC_FORMS = re.compile(r"[يكى]")  # also typed by Persian writers on Arabic keyboards
_ENGLISH_WORDS = re.compile(
    r"\b(?:the|and|is|are|to|you|your|of|for|please|thanks|thank|my|that|it|this|with|we|not|"
    r"can|have|hi|hello|order)\b",
    re.IGNORECASE,
)


def _language_hint(text: str, content_language: str | None) -> str | None:
    sample = text[:4000]
    arabic_letters = len(_ARABIC_LETTER.findall(sample))
    latin_letters = len(re.findall(r"[A-Za-z]", sample))
    if arabic_letters and arabic_letters >= latin_letters / 3:
        persian = 3 * len(_PERSIAN_ONLY.findall(sample)) + len(_PERSIAN_FORMS.findall(sample))
        arabic = 3 * len(_ARABIC_ONLY.findall(sample))
        if persian == arabic == 0:
            arabic = len(_ARABIC_FORMS.findall(sample))
        return "fa" if persian >= arabic else "ar"
    if latin_letters and len(_ENGLISH_WORDS.findall(sample)) >= 2:
        return "en"
    if content_language:
        tag = content_language.split(",")[0].strip().split("-")[0].lower()
        return tag or None
    return None


# --------------------------------------------------------------------------------------------
# Entry point


def parse_mail(raw: bytes, *, max_attachment_bytes: int = 25 * 1024 * 1024) -> ParsedMail:
    """Parse one message. Never raises: malformed input gives a best-effort `ParsedMail`."""
    try:
        return _parse(raw, max_attachment_bytes)
    except Exception:
        logger.exception("mail parse failed; falling back to raw text")
        text = decode_bytes(raw.split(b"\n\n", 1)[-1] if b"\n\n" in raw else raw)
        return ParsedMail(
            message_id=None, in_reply_to=None, references=(), from_name="", from_address="",
            reply_to=None, to=(), cc=(), subject="", date=None, text=text, full_text=text,
            html="", attachments=(), kind="message", bounce=None,
        )  # fmt: skip


def _parse(raw: bytes, limit: int) -> ParsedMail:
    msg = email.message_from_bytes(raw, policy=_POLICY)
    senders = _addresses(_raw_header(msg, "From"))
    from_name, from_address = senders[0] if senders else ("", "")
    if not from_address:
        sender = _addresses(_raw_header(msg, "Sender"))
        from_name, from_address = sender[0] if sender else (from_name, "")
    if not from_name and not from_address:
        from_name = decode_header_value(_raw_header(msg, "From"))
    reply_to = _addresses(_raw_header(msg, "Reply-To"))
    subject = decode_header_value(_raw_header(msg, "Subject"))

    walker = _Walker(limit)
    walker.walk(msg)
    collected = walker.out

    html_source = "\n".join(collected.htmls)
    full_text = _tidy_text("\n".join(t for t in collected.texts if t.strip()))
    if not full_text and html_source:
        full_text = html_to_text(html_source)
    clean, _history = fold_quotes(full_text)

    kind: Kind = "message"
    bounce: BounceReport | None = None
    found = _dsn_report(collected, full_text) or _nonstandard_bounce(
        msg, from_address, subject, collected, full_text
    )
    if found:
        kind, bounce = found
    elif _is_auto_reply(msg, subject):
        kind = "auto_reply"

    return ParsedMail(
        message_id=normalize_message_id(_raw_header(msg, "Message-ID")),
        in_reply_to=normalize_message_id(_raw_header(msg, "In-Reply-To")),
        references=_message_ids(" ".join(_raw_headers(msg, "References"))),
        from_name=from_name,
        from_address=from_address,
        reply_to=reply_to[0][1] if reply_to else None,
        to=tuple(addr for _, addr in _addresses(", ".join(_raw_headers(msg, "To")))),
        cc=tuple(addr for _, addr in _addresses(", ".join(_raw_headers(msg, "Cc")))),
        subject=subject,
        date=_parse_date(_raw_header(msg, "Date")),
        text=clean,
        full_text=full_text,
        html=sanitize_html(html_source),
        attachments=tuple(collected.parts),
        kind=kind,
        bounce=bounce,
        language_hint=_language_hint(clean, _raw_header(msg, "Content-Language")),
    )
