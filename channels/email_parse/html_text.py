"""HTML made safe to show (nh3, no remote content), and HTML or flowed text made plain."""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser

import nh3

logger = logging.getLogger(__name__)

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
        return tidy_text("\n".join(self.lines))


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient, but a broken document must not stop the parse
        logger.debug("HTML to text failed", exc_info=True)
    return parser.text()


def tidy_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = [line.rstrip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue  # at most one blank line in a row
        out.append(line)
    return "\n".join(out).strip("\n")


def unflow(text: str, *, delsp: bool) -> str:
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
