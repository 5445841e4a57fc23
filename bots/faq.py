"""The FAQ bot's matcher: finds the knowledge-base entry a customer's question asks about.

Pure (no database, no I/O): callers load `Entry` values, `FaqIndex.build()` them once and ask
`reply()` per customer message. How it matches and how to tune it: docs/faq.md."""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bots.handover import asks_for_human
from bots.normalize import detect_language, loose_stems, terms

log = logging.getLogger(__name__)

DEFAULT_ANSWER_AT = 0.4
"""Confidence from which the bot answers with the best entry."""
DEFAULT_SUGGEST_AT = 0.25
"""Confidence from which the bot offers the closest entries to choose from."""

MAX_TEXT = 2_000
"""Characters of a message that are matched; a longer one is cut (it is not a FAQ question)."""
MAX_TERMS = 64
NGRAM = 3
WORD_WEIGHT = 0.5
"""Share of word overlap (the rest is character n-grams, which forgive typos and suffixes)."""
QUERY_SIDE = 0.5
"""How much covering the customer's words counts against covering the entry's words."""
ENTRY_SIDE = 0.1
"""Share of the score from the words the whole entry (all its phrasings together) covers."""
COVERAGE_WEIGHT = 0.2
"""An entry that covers only part of the customer's words loses up to this share of its score
(× 0.8 + 0.2 × √coverage): one shared word ("phone") is not an answer."""
OTHER_LANGUAGE = 0.85
"""Entries in the other language than the customer's score this much of their match."""
MARGIN = 0.08
"""A runner-up (itself ≥ suggest_at) closer than this to the best: the bot offers a choice
rather than answer."""
CANDIDATES = 80
"""Phrasings scored in full per reply: the best by word overlap, and half as many found by
rare character n-grams alone (typos); the rest cannot come close."""
RARE_GRAMS = 20
"""Character n-grams in at most this many phrasings (or 2 %) find candidates on their own;
commoner ones only add to the score of phrasings found otherwise (that keeps replies fast)."""
TYPO_FACTOR = 0.8
"""An unknown word one typo away from a known one counts this much of it."""
ANSWER_SIDE = 0.1
"""Share of the score from how much of the customer's words the entry's answer (and tags)
hold: people ask in the answer's words as often as in a phrasing's. Those words also count
as covered for the coverage penalty."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One knowledge-base entry as the matcher sees it."""

    id: int
    question: str
    answer: str
    language: str
    alternatives: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """An entry and how sure the matcher is (in [0, 1]) that it answers the question."""

    entry: Entry
    score: float


@dataclass(frozen=True, slots=True)
class Reply:
    """What the bot should do with a customer's message."""

    kind: Literal["answer", "choose", "unknown", "handover"]
    language: str
    matches: tuple[Match, ...] = ()


def _ngrams(items: list[str]) -> dict[str, int]:
    text = f" {' '.join(items)} "
    counts: dict[str, int] = {}
    for i in range(len(text) - NGRAM + 1):
        gram = text[i : i + NGRAM]
        if gram.strip():
            counts[gram] = counts.get(gram, 0) + 1
    return counts


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _min_typo_len(word: str) -> int:
    return 4 if word.isascii() else 3


def _combine(word: float, chars: float) -> float:
    """One phrasing's score from its word overlap and its character n-gram cosine."""
    return WORD_WEIGHT * word + (1 - WORD_WEIGHT) * chars


class FaqIndex:
    """Entries pre-computed for matching: per phrasing (question or alternative) its terms and
    character n-grams, with inverted indexes so a reply only touches phrasings that share
    something with the customer's message."""

    def __init__(self, entries: list[Entry], *, answer_at: float, suggest_at: float) -> None:
        self.entries = entries
        self.answer_at = answer_at
        self.suggest_at = suggest_at
        self._doc_entry: list[int] = []
        self._doc_weight: list[float] = []
        self._term_docs: dict[str, list[int]] = {}
        self._term_entries: dict[str, list[int]] = {}
        self._gram_docs: dict[str, list[int]] = {}
        self._doc_grams: list[dict[str, float]] = []
        self._typos: dict[str, set[str]] = {}
        doc_terms: list[set[str]] = []
        doc_grams: list[dict[str, int]] = []
        for n, entry in enumerate(entries):
            bag: set[str] = set()
            for phrasing in (entry.question, *entry.alternatives):
                found = terms(phrasing[:MAX_TEXT])[:MAX_TERMS]
                if not found:
                    continue
                self._doc_entry.append(n)
                doc_terms.append(set(found))
                doc_grams.append(_ngrams(found))
                bag.update(found)
            for term in bag:
                self._term_entries.setdefault(term, []).append(n)
        total = max(len(entries), 1)
        self._idf = {
            term: math.log(1 + (total - len(ids) + 0.5) / (len(ids) + 0.5))
            for term, ids in self._term_entries.items()
        }
        self._unknown_idf = math.log(1 + (total + 0.5) / 0.5)
        for d, doc in enumerate(doc_terms):
            self._doc_weight.append(sum(self._idf[t] for t in doc))
            for term in doc:
                self._term_docs.setdefault(term, []).append(d)
        docs = max(len(doc_grams), 1)
        gram_df: dict[str, int] = {}
        for grams in doc_grams:
            for gram in grams:
                gram_df[gram] = gram_df.get(gram, 0) + 1
        self._gram_idf = {g: math.log(1 + docs / df) for g, df in gram_df.items()}
        self._gram_unknown = math.log(1 + docs)
        self._rare = max(RARE_GRAMS, docs // 50)
        for d, grams in enumerate(doc_grams):
            vector = {g: c * self._gram_idf[g] for g, c in grams.items()}
            norm = math.sqrt(sum(w * w for w in vector.values())) or 1.0
            self._doc_grams.append({g: w / norm for g, w in vector.items()})
            for gram in vector:
                if gram_df[gram] <= self._rare:
                    self._gram_docs.setdefault(gram, []).append(d)
        # The answer's own words: customers often ask in the words the answer uses, not in
        # those of any phrasing ("when does my parcel get here" → "delivery takes 2–4 days").
        self._answer_entries: dict[str, list[int]] = {}
        for n, entry in enumerate(entries):
            for term in set(terms(f"{entry.answer} {' '.join(entry.tags)}"[: MAX_TEXT * 4])):
                self._answer_entries.setdefault(term, []).append(n)
        self._answer_idf = {
            term: math.log(1 + (total - len(ids) + 0.5) / (len(ids) + 0.5))
            for term, ids in self._answer_entries.items()
        }
        for term in self._term_entries:
            if len(term) >= _min_typo_len(term):
                for variant in _deletes(term) | {term}:
                    self._typos.setdefault(variant, set()).add(term)

    @classmethod
    def build(
        cls,
        entries: Iterable[Entry],
        *,
        answer_at: float = DEFAULT_ANSWER_AT,
        suggest_at: float = DEFAULT_SUGGEST_AT,
    ) -> FaqIndex:
        """Pre-compute everything `reply()` needs (about 1 s for 10,000 entries)."""
        return cls(list(entries), answer_at=answer_at, suggest_at=suggest_at)

    def __len__(self) -> int:
        return len(self.entries)

    def _correct(self, term: str) -> str | None:
        """The known term an unknown one stands for: a shorter reading of it (a suffix or
        prefix the stemmer left), else the one a typo away (the most common if several)."""
        for stem in loose_stems(term):
            if stem in self._idf:
                return stem
        if len(term) < _min_typo_len(term) or len(term) > 30:
            return None
        found: set[str] = set()
        for variant in _deletes(term) | {term}:
            found |= self._typos.get(variant, set())
        if not found:
            return None
        return min(found, key=lambda t: (self._idf[t], t))

    def scores(self, text: str) -> list[Match]:
        """Every entry that shares anything with `text`, best first, with its confidence."""
        query = list(dict.fromkeys(terms(text[:MAX_TEXT])))[:MAX_TERMS]
        if not query or not self.entries:
            return []
        language = detect_language(text[:MAX_TEXT])
        weights: dict[str, float] = {}
        total = 0.0
        fixed_query: list[str] = []
        for term in query:
            if term in self._idf:
                weights[term] = self._idf[term]
                total += self._idf[term]
                fixed_query.append(term)
                continue
            fixed = self._correct(term)
            if fixed is None:
                total += self._unknown_idf
                fixed_query.append(term)
            elif fixed not in weights:
                weights[fixed] = self._idf[fixed] * TYPO_FACTOR
                total += self._idf[fixed]
                fixed_query.append(fixed)
        word_hits: dict[int, float] = {}
        entry_hits: dict[int, float] = {}
        answer_hits: dict[int, float] = {}
        for term in dict.fromkeys(fixed_query + query):
            for e in self._answer_entries.get(term, ()):
                answer_hits[e] = answer_hits.get(e, 0.0) + self._answer_idf[term]
        for term, weight in weights.items():
            for d in self._term_docs[term]:
                word_hits[d] = word_hits.get(d, 0.0) + weight
            for e in self._term_entries[term]:
                entry_hits[e] = entry_hits.get(e, 0.0) + weight
        grams = _ngrams(fixed_query)
        vector = {g: c * self._gram_idf.get(g, self._gram_unknown) for g, c in grams.items()}
        norm = math.sqrt(sum(w * w for w in vector.values())) or 1.0
        words: dict[int, float] = {}
        for d, hit in word_hits.items():
            covered = min(hit / total, 1.0)
            precise = min(hit / self._doc_weight[d], 1.0) if self._doc_weight[d] else 0.0
            words[d] = covered**QUERY_SIDE * precise ** (1 - QUERY_SIDE)
        candidates = heapq.nlargest(CANDIDATES, words, key=words.__getitem__)
        by_chars: dict[int, int] = {}
        for gram in vector:
            for d in self._gram_docs.get(gram, ()):
                if d not in words:
                    by_chars[d] = by_chars.get(d, 0) + 1
        candidates += heapq.nlargest(CANDIDATES // 2, by_chars, key=by_chars.__getitem__)
        best: dict[int, float] = {}
        for d in candidates:
            doc_grams = self._doc_grams[d]
            chars = sum(w * doc_grams.get(g, 0.0) for g, w in vector.items()) / norm
            score = _combine(words.get(d, 0.0), chars)
            e = self._doc_entry[d]
            if score > best.get(e, 0.0):
                best[e] = score
        ranked: list[Match] = []
        for e in answer_hits:
            best.setdefault(e, 0.0)
        for e, score in best.items():
            coverage = min(entry_hits.get(e, 0.0) / total, 1.0)
            answered = min(answer_hits.get(e, 0.0) / total, 1.0)
            coverage = max(coverage, answered)
            score = (
                (1 - ENTRY_SIDE - ANSWER_SIDE) * score
                + ENTRY_SIDE * coverage
                + ANSWER_SIDE * answered
            ) * (1 - COVERAGE_WEIGHT + COVERAGE_WEIGHT * coverage**0.5)
            if score <= 0:
                continue
            entry = self.entries[e]
            if entry.language != language:
                score *= OTHER_LANGUAGE
            ranked.append(Match(entry, round(min(max(score, 0.0), 1.0), 4)))
        ranked.sort(key=lambda m: (-m.score, m.entry.id))
        return ranked

    def reply(self, text: str) -> Reply:
        """kind "handover" when the customer asks for a human; "answer" when the best score
        ≥ answer_at and no runner-up ≥ suggest_at is within MARGIN of it; "choose" when the
        best ≥ suggest_at (the 2–3 closest, best first; 1 only if nothing else matched at
        all); else "unknown". Never raises, whatever the text."""
        if not isinstance(text, str):
            text = ""
        language = detect_language(text[:MAX_TEXT])
        try:
            if asks_for_human(text[:MAX_TEXT]):
                return Reply("handover", language)
            ranked = self.scores(text)
        except Exception:  # a bug here must not stop the conversation: an agent answers
            log.exception("FAQ matching failed; treating the message as unknown")
            return Reply("unknown", language)
        if not ranked:
            return Reply("unknown", language)
        top = ranked[0]
        runner_up = ranked[1].score if len(ranked) > 1 else 0.0
        clear = top.score - runner_up >= MARGIN or runner_up < self.suggest_at
        if top.score >= self.answer_at and clear:
            return Reply("answer", language, (top,))
        if top.score >= self.suggest_at:
            close = [m for m in ranked[1:3] if m.score >= top.score - 0.25] or ranked[1:2]
            return Reply("choose", language, (top, *close))
        return Reply("unknown", language)
