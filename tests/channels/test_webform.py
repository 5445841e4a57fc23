"""The web form channel's pure parts: reading a body in its charset, and validating the fields,
on recorded form and JSON bodies kept in `tests/payloads/webform/`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from channels.base import Rejected
from channels.webform import Submission, WebformConfig, decode_fields, parse_submission

PAYLOADS = Path(__file__).parent.parent / "payloads" / "webform"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
CONFIG = WebformConfig(name="contact")
SEED = "مشتری که در قبال دریافت کالا یا خدمات به شرکت پول پرداخت میکند"
# windows-1256 has no Persian yeh (U+06CC); legacy Persian systems write the Arabic yeh (U+064A).
SEED_1256 = (
    "کارآمدي يک سيستم مديريت روابط با مشتريان با قابليت هاي آن در برقراري روابط بلندمدت "
    "با مشتريان بستگي دارد"
)


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def rejected(call: Any, *args: Any) -> Rejected:
    with pytest.raises(Rejected) as caught:
        call(*args)
    return caught.value


def test_a_browser_form_in_persian_keeps_every_character() -> None:
    fields = decode_fields(payload("contact_persian.form"), FORM, None)

    submission = parse_submission(fields, CONFIG)

    assert submission == Submission(
        name="نگار احمدی",
        email="negar.ahmadi@example.com",
        phone="+989121234567",
        subject="پیگیری سفارش",
        # a textarea's line breaks arrive as CRLF; the ZWNJ in "می‌کند" survives
        message=(
            "سلام،\r\nمشتری که در قبال دریافت کالا یا خدمات به شرکت پول پرداخت می‌کند باید "
            "پاسخ بگیرد.\r\nسفارش ۱۴۰۲۰۵۱۲ هنوز نرسیده."
        ),
        extra={},
    )


def test_a_json_post_from_a_widget_keeps_unknown_fields_as_extra() -> None:
    fields = decode_fields(payload("contact_persian.json"), JSON, "utf-8")

    submission = parse_submission(fields, CONFIG)

    assert submission.name == "رضا رضایی"
    assert submission.phone == "+989121234567"
    assert submission.message.startswith("سیستم CRM از طریق ردیابیِ خودکار")
    assert submission.message.endswith("سابقه‌ی تماس‌های من را ببینید.")
    assert submission.extra == {
        "page": "https://shop.example.ir/support?ref=footer",
        "utm_source": "instagram",
    }


def test_arabic_indic_digits_and_arabic_letters_arrive_untouched_but_the_phone_normalized() -> None:
    submission = parse_submission(decode_fields(payload("arabic_digits.json"), JSON, None), CONFIG)

    assert submission.phone == "+989121234567"
    assert submission.email == ""
    assert submission.name == "علي كريمي"  # normalizing letters is for search, not for storage
    assert submission.message == "پاسخگويي سريعتری به درخواستهاي مشتريان داشته باشد"


@pytest.mark.parametrize("name", ["windows1256_percent.form", "windows1256_raw.form"])
def test_a_windows_1256_form_is_read_in_its_declared_charset(name: str) -> None:
    fields = decode_fields(payload(name), FORM, "windows-1256")

    submission = parse_submission(fields, CONFIG)

    assert (submission.name, submission.email, submission.message) == (
        "مريم",
        "maryam@example.com",
        SEED_1256,
    )


def test_a_windows_1256_form_read_as_utf_8_is_refused_not_garbled() -> None:
    raw = rejected(decode_fields, payload("windows1256_raw.form"), FORM, None)
    escaped = rejected(decode_fields, payload("windows1256_percent.form"), FORM, "utf-8")

    assert (raw.status, raw.reason) == (400, "body is not valid utf-8 text")
    assert (escaped.status, escaped.reason) == (400, "body has %XX escapes that are not utf-8")


def test_the_honeypot_field_is_left_out_of_the_extra_fields() -> None:
    fields = decode_fields(payload("spam_honeypot.form"), FORM, None)

    assert fields["website"] == "http://spam.example"
    assert "website" not in parse_submission(fields, CONFIG).extra


@pytest.mark.parametrize(
    ("body", "content_type", "charset", "status", "reason"),
    [
        (b'{"message": "' + SEED.encode(), JSON, None, 400, "body is not valid JSON"),
        (b'["message"]', JSON, None, 400, "body must be a JSON object"),
        (b"[" * 100_000, JSON, None, 400, "body is not valid JSON"),
        (
            b'{"email": "a@example.com", "message": "\\ud83d"}',
            JSON,
            None,
            400,
            "body has a \\u escape that is not a character",
        ),
        (
            b'{"email": "a@example.com", "message": "x", "\\udfff": "x"}',
            JSON,
            None,
            400,
            "body has a \\u escape that is not a character",
        ),
        (b"email=a%40example.com&&message", FORM, None, 400, "body is not a valid form encoding"),
        (b"message", FORM, None, 400, "body is not a valid form encoding"),
        (
            "&".join(f"field{i}=x" for i in range(101)).encode(),
            FORM,
            None,
            400,
            "body is not a valid form encoding",
        ),
        (b"message=%FF%FE&email=a%40example.com", FORM, None, 400, "utf-8"),
        (b"message=\xff\xfe", FORM, "utf-8", 400, "body is not valid utf-8 text"),
        (b"message=x", FORM, "x-klingon", 400, "body is not valid x-klingon text"),
        (b"message=x", "text/plain", None, 415, "application/x-www-form-urlencoded"),
        (b"--b\r\n\r\nx\r\n--b--", "multipart/form-data", None, 415, "application/json"),
        (b"message=x", "application/octet-stream", None, 415, "application/json"),
    ],
    ids=[
        "truncated JSON",
        "JSON array",
        "JSON nested too deep",
        "JSON lone surrogate value",
        "JSON lone surrogate key",
        "empty form pair",
        "form field without =",
        "101 form fields",
        "percent escapes not UTF-8",
        "bytes not UTF-8",
        "unknown charset",
        "text/plain",
        "multipart",
        "no content type",
    ],
)
def test_unreadable_bodies_are_refused_with_what_is_wrong(
    body: bytes, content_type: str, charset: str | None, status: int, reason: str
) -> None:
    error = rejected(decode_fields, body, content_type, charset)

    assert error.status == status
    assert reason in error.reason


def test_an_empty_form_is_read_as_no_fields() -> None:
    assert decode_fields(b"", FORM, None) == {}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"email": "a@example.com"}, "message: required"),
        ({"email": "a@example.com", "message": " \r\n\t "}, "message: required"),
        ({"message": SEED}, "email or phone: one is required so that we can answer"),
        ({"message": SEED, "email": "", "phone": ""}, "email or phone: one is required"),
        ({"message": SEED, "email": "reza at example.com"}, "email: not an email address"),
        ({"message": SEED, "email": "<script>@example.com"}, "email: not an email address"),
        ({"message": SEED, "phone": "۱۲۳"}, "phone: not a phone number"),
        ({"message": SEED, "phone": "0912-CALL-ME"}, "phone: not a phone number"),
        ({"message": 42, "email": "a@example.com"}, "message: must be text"),
        ({"message": [SEED], "email": "a@example.com"}, "message: must be text"),
        ({"message": None, "email": "a@example.com"}, "message: must be text"),
        ({"message": SEED, "email": {"$ne": ""}}, "email: must be text"),
        ({"message": SEED, "email": "a@example.com", "name": "ن" * 201}, "name: longer than 200"),
        (
            {"message": SEED, "email": "a@example.com", "subject": "س" * 501},
            "subject: longer than 500",
        ),
        ({"message": "م" * 20_001, "email": "a@example.com"}, "message: longer than 20000"),
        ({"message": SEED, "email": "a@example.com", "company": "x" * 1001}, "company: longer"),
    ],
)
def test_invalid_fields_are_refused_naming_the_field(fields: dict[str, Any], reason: str) -> None:
    error = rejected(parse_submission, fields, CONFIG)

    assert error.status == 422
    assert reason in error.reason


def test_control_characters_are_dropped_but_line_breaks_and_tabs_kept() -> None:
    fields = {"email": "a@example.com", "message": "\x00سلام\x07\r\n\tخداحافظ\x1b\x7f  "}

    assert parse_submission(fields, CONFIG).message == "سلام\r\n\tخداحافظ"


def test_markup_and_sql_are_text_like_any_other() -> None:
    fields = {
        "name": "Robert'); DROP TABLE customers;--",
        "email": "o'reilly'--@example.com",
        "subject": "<script>alert('x')</script>",
        "message": f"{SEED} ' OR '1'='1'; -- <img src=x onerror=alert(1)>",
        "company": "<b>شرکت</b>",
    }

    submission = parse_submission(fields, CONFIG)

    assert submission.name == fields["name"]
    assert submission.email == fields["email"]
    assert submission.subject == fields["subject"]
    assert submission.message == fields["message"]
    assert submission.extra == {"company": "<b>شرکت</b>"}


def test_a_configured_country_and_message_limit_apply() -> None:
    config = WebformConfig(name="uk", default_country="44", max_message_chars=10)

    assert parse_submission({"phone": "07700 900123", "message": "hello"}, config).phone == (
        "+447700900123"
    )
    too_long = rejected(parse_submission, {"phone": "07700 900123", "message": "x" * 11}, config)
    assert (too_long.status, too_long.reason) == (422, "message: longer than 10 characters")


def test_extra_fields_that_are_not_text_are_ignored_and_at_most_fifty_are_read() -> None:
    fields: dict[str, Any] = {"email": "a@example.com", "message": SEED, "score": 5, "tags": ["a"]}
    fields.update({f"field{i}": "x" for i in range(60)})

    extra = parse_submission(fields, CONFIG).extra

    assert "score" not in extra and "tags" not in extra
    assert len(extra) == 50 - 4  # the first fifty pairs, less message, email, score and tags
