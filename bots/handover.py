"""Noticing that a customer asks for a person rather than the bot, in Persian or English."""

from __future__ import annotations

import re

from bots.normalize import words

_WORDS = frozenset(
    {
        "human", "humans", "agent", "agents", "operator", "operators", "representative",
        "اپراتور", "اوپراتور", "اپراطور", "کارشناس", "کارشناسان", "پشتیبان", "پشتیبانها",
        "اپراتوری", "ادمین", "admin",
    }
)  # fmt: skip
"""A word that on its own asks for a person (پشتیبان, but not پشتیبانی: "support hours")."""

_PHRASES = re.compile(
    r"\b(real|live|actual) (person|people|human)\b"
    r"|\b(talk|speak|chat) (to|with) (a |an )?(person|someone|somebody|support|staff)\b"
    r"|\bcustomer service (rep|representative)\b"
    r"|آدم واقعی|انسان واقعی|یک آدم|یک نفر|یکی از همکاران|نیروی انسانی|شخص واقعی"
    r"|با یکی صحبت|با پشتیبانی صحبت|با پشتیبانی حرف|به پشتیبانی وصل|وصلم کن|وصل کنید"
    r"|ربات نمیخواه|با ربات نه|ربات نه"
)
"""Phrases that ask for a person, matched on normalized words (ZWNJ and letters folded)."""


def _one_typo(word: str, target: str) -> bool:
    """True when `word` is `target` with one letter added, dropped, changed or swapped."""
    if abs(len(word) - len(target)) > 1 or word == target:
        return word == target
    if len(word) == len(target):
        diff = [i for i, (a, b) in enumerate(zip(word, target, strict=True)) if a != b]
        return len(diff) == 1 or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and word[diff[0]] == target[diff[1]]
            and word[diff[1]] == target[diff[0]]
        )
    short, long = (word, target) if len(word) < len(target) else (target, word)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


_TYPO_TARGETS = ("operator", "human", "agent", "representative", "اپراتور", "کارشناس")


def asks_for_human(text: str) -> bool:
    """Whether the message asks for a human (also with a typo: "opertor", "اپراتو")."""
    found = words(text)[:200]
    if any(word in _WORDS for word in found):
        return True
    joined = " ".join(found)
    if _PHRASES.search(joined):
        return True
    return any(
        len(word) >= 5 and _one_typo(word, target)
        for word in found
        for target in _TYPO_TARGETS
        if abs(len(word) - len(target)) <= 1
    )
