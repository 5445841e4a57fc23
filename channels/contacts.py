"""Normalizing email addresses and phone numbers, so the same person is recognized everywhere."""

from __future__ import annotations

import re

_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")
_PHONE_NOISE = re.compile(r"[\s\-().\u200c\u200f\u200e]")


def normalize_email(raw: str) -> str | None:
    """Lower-cased address, or `None` if it is not an email address."""
    value = raw.strip().lower()
    if not value or len(value) > 320 or not _EMAIL.match(value):
        return None
    return value


def normalize_phone(raw: str, *, default_country: str = "98") -> str | None:
    """E.164 (`+989121234567`) from what people type, Persian digits included; else `None`.

    A national number with a trunk `0` (`0912…`) takes `default_country`; `00` means `+`.
    """
    value = _PHONE_NOISE.sub("", raw.translate(_DIGITS))
    if value.startswith("00"):
        value = "+" + value[2:]
    if value.startswith("+"):
        digits = value[1:]
    elif value.startswith("0"):
        digits = default_country + value[1:]
    else:
        digits = value
    if not digits.isdigit() or not 8 <= len(digits) <= 15 or digits.startswith("0"):
        return None
    return "+" + digits
