"""Composing a reply's attachments so mail clients show them right."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

from channels.base import Outbound, Sender
from channels.email_compose import compose_reply


def reply_with(files: list[tuple[str, str, bytes]]) -> list[tuple[str, str | None, str | None]]:
    composed = compose_reply(
        Outbound(
            message_id=7,
            channel="support",
            recipient=Sender(external_id="sara@example.com", name="سارا"),
            text="گزارش پیوست است.",
            subject="گزارش",
        ),
        address="support@example.com",
        display_name="پشتیبانی",
        token="pk.7.x",
        sent_at=datetime(2026, 11, 23, tzinfo=UTC),
        attachments=files,
    )
    parsed = message_from_bytes(composed.as_bytes(), policy=policy.default)
    return [
        (part.get_content_type(), part.get_param("charset"), part.get_filename())
        for part in parsed.iter_attachments()
    ]


def test_a_utf8_text_file_says_its_charset_and_keeps_its_persian_name() -> None:
    assert reply_with([("گزارش فروش.csv", "text/csv", "نام,مبلغ\nسارا,۱۲۰۰".encode())]) == [
        ("text/csv", "utf-8", "گزارش فروش.csv")
    ]


def test_a_text_file_in_another_charset_is_not_mislabelled() -> None:
    legacy = "سلام".encode("windows-1256")
    assert reply_with([("old.txt", "text/plain", legacy)]) == [("text/plain", None, "old.txt")]


def test_a_binary_file_gets_no_charset() -> None:
    assert reply_with([("رسید.pdf", "application/pdf", b"%PDF-1.7 ...")]) == [
        ("application/pdf", None, "رسید.pdf")
    ]
