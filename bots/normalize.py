"""Persian-aware text normalization: one spelling for the letters and digits people mix."""

from __future__ import annotations

import re
import unicodedata

_LETTERS = str.maketrans(
    {
        "ي": "ی",
        "ى": "ی",
        "ك": "ک",
        "ە": "ه",
        "ة": "ه",
        "ؤ": "و",
        "إ": "ا",
        "أ": "ا",
        "ٱ": "ا",
        "۰": "0",
        "۱": "1",
        "۲": "2",
        "۳": "3",
        "۴": "4",
        "۵": "5",
        "۶": "6",
        "۷": "7",
        "۸": "8",
        "۹": "9",
        "٠": "0",
        "١": "1",
        "٢": "2",
        "٣": "3",
        "٤": "4",
        "٥": "5",
        "٦": "6",
        "٧": "7",
        "٨": "8",
        "٩": "9",
        "\u200c": " ",
        "\u200f": "",
        "\u200e": "",
        "ـ": "",
    }
)
_DIACRITICS = re.compile(r"[\u064b-\u065f\u0670]")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower-cased, Arabic letter forms and digits made Persian/Latin, ZWNJ and tatweel folded,
    diacritics dropped, whitespace collapsed. Used for matching, never for display."""
    text = unicodedata.normalize("NFKC", text).translate(_LETTERS)
    text = _DIACRITICS.sub("", text)
    return _SPACE.sub(" ", text).strip().casefold()


_PERSIAN = re.compile(r"[\u0600-\u06ff]")
_LATIN = re.compile(r"[A-Za-z]")


def detect_language(text: str) -> str:
    """`fa` when Persian/Arabic letters outnumber Latin ones, else `en`."""
    persian = len(_PERSIAN.findall(text))
    return "fa" if persian and persian >= len(_LATIN.findall(text)) else "en"
