"""A hint of the language a mail is written in (Persian, Arabic, English)."""

from __future__ import annotations

import re

from channels.email_parse.charsets import ARABIC_LETTER

_PERSIAN_ONLY = re.compile(r"[پچژگ]")
_PERSIAN_FORMS = re.compile(r"[یک]")
_ARABIC_ONLY = re.compile(r"[ةإأؤ]")
_ARABIC_FORMS = re.compile(r"[يكى]")  # also typed by Persian writers on Arabic keyboards
_ENGLISH_WORDS = re.compile(
    r"\b(?:the|and|is|are|to|you|your|of|for|please|thanks|thank|my|that|it|this|with|we|not|"
    r"can|have|hi|hello|order)\b",
    re.IGNORECASE,
)


def guess_language(text: str, content_language: str | None) -> str | None:
    sample = text[:4000]
    arabic_letters = len(ARABIC_LETTER.findall(sample))
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
