"""Persian normalization: the spellings people mix match each other."""

from __future__ import annotations

import pytest

from bots.normalize import detect_language, normalize


@pytest.mark.parametrize(
    ("written", "same_as"),
    [
        ("مديريت ارتباط با مشتري", "مدیریت ارتباط با مشتری"),  # Arabic ي
        ("كارشناس پشتيباني", "کارشناس پشتیبانی"),  # Arabic ك
        ("خدمات\u200cپس\u200cاز\u200cفروش", "خدمات پس از فروش"),  # ZWNJ
        ("سفارش ۱۲۳۴", "سفارش 1234"),  # Persian digits
        ("سفارش ١٢٣٤", "سفارش 1234"),  # Arabic-Indic digits
        ("مُشتَری", "مشتری"),  # diacritics
        ("پيـــگيري", "پیگیری"),  # tatweel
        ("  Customer   Feedback ", "customer feedback"),
    ],
)
def test_variants_normalize_alike(written: str, same_as: str) -> None:
    assert normalize(written) == normalize(same_as)


def test_language_detection() -> None:
    assert detect_language("نقاط تماس مشتری با سازمان") == "fa"
    assert detect_language("Where is my order?") == "en"
    assert detect_language("سفارش order 123 من کجاست") == "fa"
    assert detect_language("12345") == "en"
