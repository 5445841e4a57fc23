"""Splitting long replies and pacing sends, on plain data and a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from channels.telegram_send import Pacer, quick_reply_markup, split_text, utf16_len


def test_a_short_text_is_one_message() -> None:
    assert split_text("سلام") == ["سلام"]


def test_long_texts_are_cut_at_paragraphs_then_words() -> None:
    paragraph = "پاسخ " * 500
    pieces = split_text("\n\n".join([paragraph.strip()] * 4), limit=4096)
    assert all(utf16_len(piece) <= 4096 for piece in pieces)
    assert [len(piece.split()) for piece in pieces] == [500, 500, 500, 500]  # paragraphs
    assert " ".join(pieces).split() == ("پاسخ " * 2000).split()


def test_a_text_without_breaks_is_cut_hard_and_emoji_count_double() -> None:
    pieces = split_text("😀" * 3000, limit=4096)
    assert [utf16_len(piece) for piece in pieces] == [4096, 1904]
    assert "".join(pieces) == "😀" * 3000


def test_quick_replies_become_one_button_a_row() -> None:
    markup = quick_reply_markup(("پیگیری سفارش", "صحبت با کارشناس"))
    assert markup is not None
    rows = markup.inline_keyboard
    assert [[b.text for b in row] for row in rows] == [["پیگیری سفارش"], ["صحبت با کارشناس"]]
    assert quick_reply_markup(()) is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record sleeps instead of sleeping."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return waits


async def test_one_chat_gets_a_message_a_second(slept: list[float]) -> None:
    pacer = Pacer(per_chat_seconds=1.0, per_second=30, clock=Clock())
    for _ in range(3):
        await pacer.wait("777")
    assert [round(w, 3) for w in slept] == [1.0, 2.0]


async def test_all_chats_together_get_thirty_a_second(slept: list[float]) -> None:
    pacer = Pacer(per_chat_seconds=1.0, per_second=30, clock=Clock())
    for chat in range(60):
        await pacer.wait(str(chat))
    assert len(slept) == 59
    assert max(slept) == pytest.approx(59 / 30, abs=1e-6)


async def test_a_busy_chat_does_not_hold_up_the_others(slept: list[float]) -> None:
    pacer = Pacer(per_chat_seconds=1.0, per_second=30, clock=Clock())
    for _ in range(5):
        await pacer.wait("busy")
    slept.clear()
    await pacer.wait("other")
    assert sum(slept) <= 1 / 30 + 1e-9


async def test_flood_control_holds_everything(slept: list[float]) -> None:
    clock = Clock()
    pacer = Pacer(per_chat_seconds=0, per_second=1000, clock=clock)
    pacer.hold(5.0)
    await pacer.wait("777")
    assert slept == [pytest.approx(5.0)]
