"""The knowledge base in the database: load, version, YAML import/export, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bots.knowledge import (
    KnowledgeError,
    export_yaml,
    import_yaml,
    knowledge_version,
    load_entries,
)
from storage.db import SessionFactory
from storage.models import FaqEntry

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]

TWO = """
- question: سفارشم کجاست؟
  alternatives: [پیگیری سفارش, "کد رهگیری"]
  answer: از «سفارش‌های من» ببینید.
  language: fa
  tags: [سفارش]
- question: How do I return an item?
  answer: Within 7 days from My orders.
  language: en
"""


async def run(sessions: SessionFactory, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    async with sessions.begin() as session:
        return await session.run_sync(fn, *args, **kwargs)


def count(session: Session) -> int:
    return int(session.scalar(select(func.count(FaqEntry.id))) or 0)


async def test_import_then_load_and_version(sessions: SessionFactory) -> None:
    assert await run(sessions, knowledge_version) == (0, "")
    result = await run(sessions, import_yaml, TWO)
    assert (result.created, result.updated, result.deleted) == (2, 0, 0)
    entries = await run(sessions, load_entries)
    assert [e.language for e in entries] == ["fa", "en"]
    assert entries[0].alternatives == ("پیگیری سفارش", "کد رهگیری")
    assert entries[1].alternatives == () and entries[1].tags == ()
    version = await run(sessions, knowledge_version)
    assert version[0] == 2 and version[1]


async def test_disabled_entries_are_not_loaded_for_the_bot(sessions: SessionFactory) -> None:
    await run(sessions, import_yaml, TWO + "  enabled: false\n")
    assert [e.language for e in await run(sessions, load_entries)] == ["fa"]
    assert len(await run(sessions, load_entries, enabled_only=False)) == 2


async def test_export_import_round_trip_keeps_everything(sessions: SessionFactory) -> None:
    await run(sessions, import_yaml, (ROOT / "faq.yaml").read_text(encoding="utf-8"))
    exported = await run(sessions, export_yaml)
    before = await run(sessions, load_entries, enabled_only=False)
    result = await run(sessions, import_yaml, exported)
    assert (result.created, result.updated) == (0, len(before))
    assert await run(sessions, load_entries, enabled_only=False) == before
    assert await run(sessions, export_yaml) == exported
    assert "سفارش" in exported  # Persian stays readable, not \\u escapes


async def test_an_id_updates_that_entry_and_changes_the_version(
    sessions: SessionFactory,
) -> None:
    await run(sessions, import_yaml, TWO)
    first = (await run(sessions, load_entries))[0]
    version = await run(sessions, knowledge_version)
    update = f"- id: {first.id}\n  question: سفارش من کجاست؟\n  answer: جدید\n  language: fa\n"
    result = await run(sessions, import_yaml, update)
    assert (result.created, result.updated) == (0, 1)
    entries = await run(sessions, load_entries)
    assert len(entries) == 2
    assert entries[0].id == first.id and entries[0].answer == "جدید"
    assert await run(sessions, knowledge_version) != version


async def test_replace_deletes_what_the_file_does_not_list(sessions: SessionFactory) -> None:
    await run(sessions, import_yaml, TWO)
    keep = (await run(sessions, load_entries))[1]
    text = yaml.safe_dump(
        [
            {"id": keep.id, "question": keep.question, "answer": "new", "language": "en"},
            {"question": "Do you ship abroad?", "answer": "No.", "language": "en"},
        ]
    )
    result = await run(sessions, import_yaml, text, replace=True)
    assert (result.created, result.updated, result.deleted) == (1, 1, 1)
    entries = await run(sessions, load_entries)
    assert [e.question for e in entries] == [keep.question, "Do you ship abroad?"]
    # and more entries can still be added afterwards (ids do not collide)
    await run(sessions, import_yaml, TWO)
    assert len(await run(sessions, load_entries)) == 4


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("- question: [unclosed", "not valid YAML"),
        ("question: not a list", "must be a list"),
        ("- just a string", "must be a mapping"),
        ("- question: Q\n  language: en\n", "'answer' must be a non-empty text"),
        ("- question: Q\n  answer: A\n  language: de\n", "'language' must be one of"),
        ("- question: Q\n  answer: A\n  language: en\n  alternatives: x\n", "list of texts"),
        ("- question: Q\n  answer: A\n  language: en\n  enabled: maybe\n", "true or false"),
        ("- question: Q\n  answer: A\n  language: en\n  colour: red\n", "unknown field"),
        ("- question: Q\n  answer: A\n  language: en\n  id: -3\n", "positive whole number"),
        ("- question: Q\n  answer: A\n  language: en\n  id: 999999\n", "no entry with id"),
        (f"- question: {'x' * 10_001}\n  answer: A\n  language: en\n", "longer than"),
    ],
)
async def test_bad_yaml_is_rejected_with_a_reason_and_nothing_written(
    sessions: SessionFactory, text: str, says: str
) -> None:
    with pytest.raises(KnowledgeError, match=says):
        await run(sessions, import_yaml, TWO + text if text.startswith("- ") else text)
    assert await run(sessions, count) == 0


async def test_every_problem_is_listed_at_once(sessions: SessionFactory) -> None:
    text = "- question: ''\n  answer: A\n  language: en\n- question: Q\n  language: xx\n"
    with pytest.raises(KnowledgeError) as caught:
        await run(sessions, import_yaml, text)
    assert len(caught.value.problems) == 3
    assert caught.value.problems[0].startswith("entry 1:")


async def test_a_bad_replace_keeps_the_old_knowledge(sessions: SessionFactory) -> None:
    await run(sessions, import_yaml, TWO)
    with pytest.raises(KnowledgeError):
        await run(sessions, import_yaml, "- question: Q\n", replace=True)
    assert await run(sessions, count) == 2


async def test_empty_file_imports_nothing(sessions: SessionFactory) -> None:
    result = await run(sessions, import_yaml, "")
    assert (result.created, result.updated, result.deleted) == (0, 0, 0)
