"""Folding quoted history and signatures away from what the customer wrote now."""

from __future__ import annotations

import re

BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
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
        line = BIDI.sub("", raw)
        if _FORWARD_MARKER.match(line):
            return None  # a forwarded message is content the customer wants us to read
        if _ORIGINAL_MESSAGE.match(line):
            return i
        if _ATTRIBUTION.match(line) and not line.lstrip().startswith(">"):
            return i
        # "On Mon, 1 Jan 2024 at 10:00, Ali <ali@\nexample.com> wrote:" wrapped over two lines
        if i + 1 < n and re.match(r"^\s*(?:On|در تاریخ)\s", line):
            joined = line + " " + BIDI.sub("", lines[i + 1])
            if _ATTRIBUTION.match(joined):
                return i
        if _HEADER_FROM.match(line):
            following = [BIDI.sub("", x) for x in lines[i + 1 : i + 6] if x.strip()]
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
    if start > 0 and BIDI.sub("", lines[start - 1]).rstrip().endswith(":"):
        start -= 1
    return start


def _signature_start(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        if i == 0:
            continue
        rest = [x for x in lines[i + 1 :] if x.strip()]
        if _SIGNATURE_DELIMITER.match(line) and len(rest) <= 20:
            return i
        if _SIGNATURE_LINE.match(BIDI.sub("", line)) and len(rest) <= 4:
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
