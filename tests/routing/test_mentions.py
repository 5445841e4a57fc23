"""Who a private note mentions: `@Name` (Persian names too) and `@email`, longest match first."""

from __future__ import annotations

from routing.mentions import Mentionable, mentioned

SARA = Mentionable(1, "سارا", "sara@example.com")
ALI = Mentionable(2, "Ali", "ali@example.com")
ALI_REZAEI = Mentionable(3, "Ali Rezaei", "rezaei@example.com")
TEAM = [SARA, ALI, ALI_REZAEI]


def test_a_persian_name_and_an_email_are_mentions() -> None:
    text = "@سارا لطفاً این مشتری را پیگیری کن؛ @ali@example.com هم در جریان باشد."
    assert mentioned(text, TEAM) == [1, 2]


def test_the_longest_name_at_an_at_sign_wins() -> None:
    assert mentioned("@Ali Rezaei نظرت چیست؟", TEAM) == [3]
    assert mentioned("@ali، نظرت چیست؟", TEAM) == [2]  # case-insensitive, Persian comma ends it


def test_a_name_inside_a_longer_word_is_not_a_mention() -> None:
    assert mentioned("@سارا\u200cها و @Alibaba و ali@example.com", TEAM) == []


def test_each_agent_once_in_order_of_first_mention() -> None:
    assert mentioned("@Ali Rezaei @سارا @Ali Rezaei. @SARA@EXAMPLE.COM", TEAM) == [3, 1]


def test_no_at_sign_no_mentions() -> None:
    assert mentioned("سارا و علی", TEAM) == []
    assert mentioned("@", TEAM) == []
