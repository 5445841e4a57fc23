"""Measuring the matcher on an evaluation set: questions with the entry that answers them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from bots.faq import FaqIndex


@dataclass(frozen=True, slots=True)
class Case:
    """A customer question and the question of the entry that answers it (None: none does)."""

    text: str
    expect: str | None


@dataclass(slots=True)
class Evaluation:
    """How the bot did. Answerable: `top1` = the expected entry offered first (answered or
    first of the choices), `answered` = answered outright with it, `wrong` = answered with
    another. Unanswerable: `declined` = not answered (choices or "unknown"), `unknown` =
    neither answered nor offered choices."""

    answerable: int = 0
    top1: int = 0
    answered: int = 0
    wrong: int = 0
    unanswerable: int = 0
    declined: int = 0
    unknown: int = 0
    misses: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(question, what the bot did, the entry it offered first) for every case it got wrong."""

    @property
    def top1_rate(self) -> float:
        return self.top1 / self.answerable if self.answerable else 0.0

    @property
    def answered_rate(self) -> float:
        return self.answered / self.answerable if self.answerable else 0.0

    @property
    def decline_rate(self) -> float:
        return self.declined / self.unanswerable if self.unanswerable else 0.0

    @property
    def unknown_rate(self) -> float:
        return self.unknown / self.unanswerable if self.unanswerable else 0.0


def load_cases(text: str) -> list[Case]:
    """The evaluation YAML: a list of `{q: question, expect: entry question or null}`."""
    return [Case(str(item["q"]), item.get("expect")) for item in yaml.safe_load(text) or []]


def evaluate(index: FaqIndex, cases: Sequence[Case]) -> Evaluation:
    """Ask the index every case's question and count what it did."""
    result = Evaluation()
    for case in cases:
        reply = index.reply(case.text)
        first = reply.matches[0].entry.question if reply.matches else None
        if case.expect is None:
            result.unanswerable += 1
            result.declined += reply.kind != "answer"
            result.unknown += reply.kind in ("unknown", "handover")
            if reply.kind != "unknown":
                result.misses.append((case.text, reply.kind, first))
            continue
        result.answerable += 1
        offered = reply.kind in ("answer", "choose") and first == case.expect
        result.top1 += offered
        result.answered += reply.kind == "answer" and first == case.expect
        result.wrong += reply.kind == "answer" and first != case.expect
        if not (reply.kind == "answer" and first == case.expect):
            result.misses.append((case.text, reply.kind, first))
    return result
