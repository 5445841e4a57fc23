"""Email parsing on a corpus of real-shaped mail, quote folding, HTML sanitizing, and fuzzing."""

from __future__ import annotations

import random
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml

from channels.email_parse import (
    ParsedMail,
    decode_bytes,
    fold_quotes,
    normalize_message_id,
    parse_mail,
    sanitize_html,
)

CORPUS = Path(__file__).parent.parent / "payloads" / "email"
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load(
    (CORPUS / "expected.yaml").read_text(encoding="utf-8")
)
MESSAGES = sorted(p.name for p in CORPUS.glob("*.eml"))


def test_corpus_is_big_enough_and_every_message_has_expectations() -> None:
    assert len(MESSAGES) >= 30
    assert sorted(EXPECTED) == MESSAGES


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _check_attachments(mail: ParsedMail, expected: list[dict[str, Any]]) -> None:
    assert len(mail.attachments) == len(expected)
    for part, want in zip(mail.attachments, expected, strict=True):
        for key, value in want.items():
            if key == "stored":
                assert (part.data is not None) == value, part.filename
            elif key == "note_contains":
                assert value in part.note
            else:
                assert getattr(part, key) == value, (part.filename, key)
        if part.data is not None:
            assert len(part.data) == part.size


@pytest.mark.parametrize("name", MESSAGES)
def test_corpus_message_parses_as_expected(name: str) -> None:
    expected = dict(EXPECTED[name])
    options = expected.pop("options", {})
    mail = parse_mail((CORPUS / name).read_bytes(), **options)
    for key, want in expected.items():
        if key.endswith("_not_contains"):
            field = getattr(mail, key.removesuffix("_not_contains"))
            for needle in _as_list(want):
                assert needle not in field, (key, needle)
        elif key.endswith("_contains"):
            field = getattr(mail, key.removesuffix("_contains"))
            for needle in _as_list(want):
                assert needle in field, (key, needle)
        elif key == "attachments":
            _check_attachments(mail, want)
        elif key == "bounce":
            if want is None:
                assert mail.bounce is None
            else:
                assert mail.bounce is not None
                for field_name, value in want.items():
                    assert getattr(mail.bounce, field_name) == value, field_name
        elif key == "date":
            want_date = datetime.fromisoformat(want) if want else None
            assert mail.date == want_date
            if mail.date is not None:
                assert mail.date.utcoffset() == want_date.utcoffset()  # type: ignore[union-attr]
        elif key in {"to", "cc", "references"}:
            assert list(getattr(mail, key)) == want
        else:
            assert getattr(mail, key) == want, key


@pytest.mark.parametrize("name", MESSAGES)
def test_every_message_has_basic_invariants(name: str) -> None:
    mail = parse_mail((CORPUS / name).read_bytes())
    assert mail.from_address == mail.from_address.lower()
    assert mail.date is None or mail.date.tzinfo is not None
    assert "\ufffd" not in mail.text  # no mojibake where the bytes allow a clean decode
    assert mail.text in mail.full_text or not mail.full_text
    assert (mail.kind in {"bounce", "delivery_report"}) == (mail.bounce is not None)
    for ident in (mail.message_id, mail.in_reply_to, *mail.references):
        assert ident is None or (ident.startswith("<") and ident.endswith(">"))


# --- huge attachments ----------------------------------------------------------------------


def _mail_with_attachment(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "big@example.com"
    msg["To"] = "support@pishkhan.test"
    msg["Subject"] = "huge"
    msg["Message-ID"] = "<huge@example.com>"
    msg.set_content("see attachment")
    msg.add_attachment(
        b"\x00\x01" * (size // 2), maintype="application", subtype="octet-stream",
        filename="disk.img",
    )  # fmt: skip
    return msg.as_bytes()


def test_huge_attachment_over_the_limit_is_noted_not_stored() -> None:
    raw = _mail_with_attachment(3 * 1024 * 1024)
    mail = parse_mail(raw, max_attachment_bytes=1024 * 1024)
    (part,) = mail.attachments
    assert part.filename == "disk.img"
    assert part.size == 3 * 1024 * 1024
    assert part.data is None
    assert "3,145,728 bytes" in part.note and "1,048,576-byte" in part.note
    assert mail.text == "see attachment"


def test_attachment_at_the_limit_is_stored() -> None:
    mail = parse_mail(_mail_with_attachment(4096), max_attachment_bytes=4096)
    (part,) = mail.attachments
    assert part.data == b"\x00\x01" * 2048
    assert part.note == ""


# --- quote folding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "clean", "folded_starts"),
    [
        (
            "Yes, please.\n\nOn Tue, 16 Apr 2024 at 09:00, Support <s@p.test> wrote:\n> Shall we?",
            "Yes, please.",
            "On Tue",
        ),
        (
            "Yes.\n\nOn Tue, Apr 16, 2024 at 9:00 AM Support <\ns@p.test> wrote:\n\n> Shall we?\n",
            "Yes.",
            "On Tue",
        ),
        (
            "باشه.\n\nدر تاریخ سه‌شنبه ۱۶ آوریل ۲۰۲۴، پشتیبانی <s@p.test> نوشت:\n> آیا؟",
            "باشه.",
            "در تاریخ",
        ),
        (
            "\u202bممنون\u202c\n\n\u202bدر تاریخ ۱۶ آوریل، علی نوشت:\u202c\n> متن",
            "\u202bممنون\u202c",
            "\u202bدر تاریخ",
        ),
        ("Done.\n\n-----Original Message-----\nFrom: a\nSent: b\n\nold", "Done.", "-----Orig"),
        (
            "Done.\n________________________________\nFrom: Support <s@p.test>\nSent: Monday\n"
            "To: me\nSubject: x\n\nold",
            "Done.",
            "_____",
        ),
        ("Done.\n\n*From:* Support\n*Sent:* Monday\n*To:* me\n\nold", "Done.", "*From:*"),
        (
            "انجام شد.\n\nاز: پشتیبانی\nارسال شده: دوشنبه\nبه: من\nموضوع: سفارش\n\nقدیمی",
            "انجام شد.",
            "از: پشتیبانی",
        ),
        ("تم.\n\nمن: الدعم\nتم الإرسال: الاثنين\nإلى: أنا\n\nقديم", "تم.", "من: الدعم"),
        ("Fine by me.\n\n> earlier text\n> more", "Fine by me.", "> earlier"),
        ("Thanks!\n\n-- \nAli Rezaei\nSales", "Thanks!", "-- "),
        ("Thanks!\n\nSent from my iPhone", "Thanks!", "Sent from my iPhone"),
        ("Thanks!\nGet Outlook for Android", "Thanks!", "Get Outlook"),
        ("ممنون\n\nارسال شده از تلفن همراه سامسونگ", "ممنون", "ارسال شده از"),
        ("ممنون\n\nارسال\u200cشده از iPhone", "ممنون", "ارسال\u200cشده از"),
    ],
)
def test_fold_quotes_recognizes_client_styles(text: str, clean: str, folded_starts: str) -> None:
    got_clean, folded = fold_quotes(text)
    assert got_clean == clean
    assert folded.startswith(folded_starts)


def test_fold_quotes_keeps_inline_replies_and_forwards() -> None:
    inline = "> Q1?\nA1.\n> Q2?\nA2."
    assert fold_quotes(inline) == (inline, "")
    forward = (
        "FYI\n\n---------- Forwarded message ---------\nFrom: X <x@y.z>\nDate: Mon\n"
        "Subject: S\nTo: me\n\nThe forwarded body."
    )
    assert fold_quotes(forward) == (forward, "")


def test_fold_quotes_never_folds_everything_away() -> None:
    only_quote = "> just a quote\n> nothing else"
    assert fold_quotes(only_quote) == (only_quote, "")
    assert fold_quotes("") == ("", "")
    assert fold_quotes("-- \nsignature only") == ("-- \nsignature only", "")


def test_fold_quotes_does_not_cut_ordinary_text() -> None:
    text = "From: the warehouse we heard nothing.\nOn Monday I wrote to you already.\nThanks"
    assert fold_quotes(text) == (text, "")


# --- HTML sanitizing ------------------------------------------------------------------------


def test_sanitize_removes_scripts_handlers_and_javascript_urls() -> None:
    html = (
        '<p onclick="evil()">hi<script>alert(1)</script></p>'
        '<a href="javascript:alert(1)">x</a><a href="JaVaScRiPt:alert(1)">y</a>'
        '<a href="data:text/html;base64,PHNjcmlwdD4=">z</a>'
        '<img src="x" onerror="alert(1)"><svg onload="alert(1)"></svg>'
        '<iframe src="https://e.example"></iframe><object data="x"></object>'
        '<style>body{display:none}</style><link rel="stylesheet" href="https://e.example/a.css">'
        '<meta http-equiv="refresh" content="0;url=https://e.example">'
    )
    out = sanitize_html(html)
    for bad in ("script", "onclick", "onerror", "onload", "javascript", "data:text", "iframe",
                "object", "<style", "<link", "<meta", "svg", "alert"):  # fmt: skip
        assert bad not in out.lower(), bad
    assert "<p>hi</p>" in out


def test_sanitize_neutralizes_remote_images_and_keeps_cid() -> None:
    html = (
        '<img src="https://t.example/p.gif" alt="a>b"><img src="//t.example/q.gif">'
        '<img src="cid:logo@x"><img src="data:image/png;base64,iVBOR">'
        '<img src="data:image/svg+xml;base64,PHN2Zz4=">'
        '<p style="color:red;background:url(https://t.example/bg.png)">t</p>'
        '<table background="https://t.example/bg.png"><tr><td>c</td></tr></table>'
    )
    out = sanitize_html(html)
    assert 'data-src="https://t.example/p.gif"' in out
    assert 'data-src="//t.example/q.gif"' in out
    assert ' src="http' not in out and ' src="//' not in out
    assert 'src="cid:logo@x"' in out
    assert 'src="data:image/png;base64,iVBOR"' in out
    assert "svg+xml" not in out
    assert "url(" not in out and "background=" not in out
    assert '<a href="https://ok.example" rel="noopener noreferrer nofollow">' in sanitize_html(
        '<a href="https://ok.example" target="_blank">ok</a>'
    )


def test_sanitize_keeps_persian_rtl_markup() -> None:
    out = sanitize_html('<div dir="rtl" style="text-align:right"><b>سلام</b></div>')
    assert out == '<div dir="rtl" style="text-align:right"><b>سلام</b></div>'


# --- charsets and ids -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "declared", "expected"),
    [
        ("مشتري گرامي".encode("cp1256"), "windows-1256", "مشتري گرامي"),
        ("مشتري گرامي".encode("cp1256"), "utf-8", "مشتري گرامي"),
        ("مشتري گرامي".encode("cp1256"), None, "مشتري گرامي"),
        ("مشتری گرامی".encode(), "windows-1256", "مشتری گرامی"),
        ("مرحبا بكم".encode("iso-8859-6"), "iso-8859-6", "مرحبا بكم"),
        ("مرحبا بكم في الشركة".encode("iso-8859-6"), "us-ascii", "مرحبا بكم في الشركة"),
        ("café déjà vu".encode("cp1252"), "iso-8859-1", "café déjà vu"),
        ("café déjà vu".encode("cp1252"), "windows-1256", "café déjà vu"),
        (b"plain", "no-such-charset", "plain"),
    ],
)
def test_decode_bytes_recovers_mislabelled_charsets(
    data: bytes, declared: str | None, expected: str
) -> None:
    assert decode_bytes(data, declared) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@b>", "<a@b>"),
        ("  <a@b>  (comment)", "<a@b>"),
        ("a@b", "<a@b>"),
        ("", None),
        ("two words", None),
        (None, None),
    ],
)
def test_normalize_message_id(value: str | None, expected: str | None) -> None:
    assert normalize_message_id(value) == expected


# --- never raise ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MESSAGES)
def test_truncations_and_byte_flips_never_raise(name: str) -> None:
    raw = (CORPUS / name).read_bytes()
    rng = random.Random(name)
    variants = [raw[: rng.randrange(len(raw) + 1)] for _ in range(8)]
    for _ in range(12):
        flipped = bytearray(raw)
        for _ in range(rng.randint(1, 20)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        variants.append(bytes(flipped))
    variants += [b"", b"\r\n", b"\x00" * 50, raw.replace(b"\r\n", b"\n"), raw.replace(b"\n", b"\r")]
    for variant in variants:
        mail = parse_mail(variant)
        assert isinstance(mail, ParsedMail)
        assert mail.kind in {"message", "auto_reply", "bounce", "delivery_report"}


def test_pathological_structures_never_raise() -> None:
    deep = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for i in range(1, 200):
        deep += f"--b{i - 1}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n".encode()
    assert parse_mail(deep).kind == "message"
    weird_headers = b"".join(
        f"{name}: {value}\r\n".encode("utf-8", "surrogateescape")
        for name, value in [
            ("From", '"=?utf-8?B?' + "A" * 5000 + '?=" <x@y.z>'),
            ("Subject", "=?utf-8?Q?=FF=FE=?= =?bogus?X?abc?= =?utf-8?B?====?="),
            ("Date", "Mon, 99 Jan 99999 99:99:99 +9999"),
            ("Content-Type", 'text/plain; charset="\u06cc"; format=flowed; delsp'),
            ("Content-Disposition", "attachment; filename*=bogus'xx'%ZZ%"),
            ("References", "<" * 1000),
        ]
    )
    mail = parse_mail(weird_headers + b"\r\nbody\r\n")
    assert mail.from_address == "x@y.z"
