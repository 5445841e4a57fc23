"""The knowledge base's data access: load entries for the matcher, and YAML import/export.

Synchronous `Session` functions, meant to run inside `storage.work.UnitOfWork.run` (or any
session in a transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bots.faq import Entry
from storage.models import FaqEntry

LANGUAGES = ("fa", "en")
MAX_TEXT = 10_000
"""Longest question/answer/alternative accepted from YAML (characters)."""
MAX_ENTRIES = 20_000


class KnowledgeError(ValueError):
    """The YAML could not be imported; `problems` lists every reason (nothing was written)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(slots=True)
class ImportResult:
    """How many entries an import created, updated and (in replace mode) deleted."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    ids: list[int] = field(default_factory=list)


def to_entry(row: FaqEntry) -> Entry:
    """The matcher's view of a stored entry."""
    return Entry(
        id=row.id,
        question=row.question,
        answer=row.answer,
        language=row.language,
        alternatives=tuple(row.alternatives or ()),
        tags=tuple(row.tags or ()),
    )


def load_entries(session: Session, *, enabled_only: bool = True) -> list[Entry]:
    """All entries (only enabled ones by default), by id."""
    query = select(FaqEntry).order_by(FaqEntry.id)
    if enabled_only:
        query = query.where(FaqEntry.enabled.is_(True))
    return [to_entry(row) for row in session.scalars(query)]


def knowledge_version(session: Session) -> tuple[int, str]:
    """(count, newest updated_at iso) — cheap; callers rebuild their FaqIndex when it changes."""
    count, newest = session.execute(
        select(func.count(FaqEntry.id), func.max(FaqEntry.updated_at))
    ).one()
    if isinstance(newest, str):  # SQLite may hand back the stored text
        return int(count or 0), newest
    return int(count or 0), newest.isoformat() if newest is not None else ""


@dataclass(frozen=True, slots=True)
class _Item:
    id: int | None
    question: str
    alternatives: list[str]
    answer: str
    language: str
    tags: list[str]
    enabled: bool


def _text(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: '{key}' must be a non-empty text")
        return ""
    if len(value) > MAX_TEXT:
        problems.append(f"{where}: '{key}' is longer than {MAX_TEXT} characters")
    return value.strip()


def _texts(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> list[str]:
    value = raw.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where}: '{key}' must be a list of texts")
        return []
    out = [v.strip() for v in value if v.strip()]
    if any(len(v) > MAX_TEXT for v in out):
        problems.append(f"{where}: an item of '{key}' is longer than {MAX_TEXT} characters")
    return out


_KEYS = {"id", "question", "alternatives", "answer", "language", "tags", "enabled"}


def parse_yaml(text: str) -> list[_Item]:
    """Every entry of the YAML text, validated; raises KnowledgeError listing all problems."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KnowledgeError([f"not valid YAML: {exc}"]) from None
    if data is None:
        data = []
    if isinstance(data, dict) and isinstance(data.get("entries"), list):
        data = data["entries"]
    if not isinstance(data, list):
        raise KnowledgeError(["the file must be a list of entries"])
    if len(data) > MAX_ENTRIES:
        raise KnowledgeError([f"more than {MAX_ENTRIES} entries"])
    problems: list[str] = []
    items: list[_Item] = []
    seen_ids: set[int] = set()
    for n, raw in enumerate(data, start=1):
        where = f"entry {n}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a mapping with question, answer, language")
            continue
        unknown = sorted(str(k) for k in raw if k not in _KEYS)
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(unknown)}")
        entry_id = raw.get("id")
        if entry_id is not None and (
            isinstance(entry_id, bool) or not isinstance(entry_id, int) or entry_id < 1
        ):
            problems.append(f"{where}: 'id' must be a positive whole number")
            entry_id = None
        if entry_id is not None:
            if entry_id in seen_ids:
                problems.append(f"{where}: id {entry_id} appears twice")
            seen_ids.add(entry_id)
        question = _text(raw, "question", where, problems)
        answer = _text(raw, "answer", where, problems)
        language = raw.get("language")
        if language not in LANGUAGES:
            problems.append(f"{where}: 'language' must be one of {', '.join(LANGUAGES)}")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            problems.append(f"{where}: 'enabled' must be true or false")
        items.append(
            _Item(
                id=entry_id,
                question=question,
                alternatives=_texts(raw, "alternatives", where, problems),
                answer=answer,
                language=str(language),
                tags=_texts(raw, "tags", where, problems),
                enabled=bool(enabled),
            )
        )
    if problems:
        raise KnowledgeError(problems)
    return items


def entries_from_yaml(text: str) -> list[Entry]:
    """The enabled entries of a YAML knowledge base, without a database (ids: the given
    one, else the position in the file) — for tests, benchmarks and previews."""
    return [
        Entry(
            id=item.id if item.id is not None else n,
            question=item.question,
            answer=item.answer,
            language=item.language,
            alternatives=tuple(item.alternatives),
            tags=tuple(item.tags),
        )
        for n, item in enumerate(parse_yaml(text), start=1)
        if item.enabled
    ]


def import_yaml(session: Session, text: str, *, replace: bool = False) -> ImportResult:
    """Create (or, with an id, update) the YAML's entries; `replace` deletes every entry the
    file does not mention. Validates everything first; nothing is written on error."""
    items = parse_yaml(text)
    wanted = {item.id for item in items if item.id is not None}
    existing = (
        {row.id: row for row in session.scalars(select(FaqEntry).where(FaqEntry.id.in_(wanted)))}
        if wanted
        else {}
    )
    missing = sorted(wanted - set(existing))
    if missing and not replace:
        raise KnowledgeError([f"no entry with id {i} to update" for i in missing])
    result = ImportResult()
    if replace:
        for row in session.scalars(select(FaqEntry).where(FaqEntry.id.not_in(wanted))):
            session.delete(row)
            result.deleted += 1
        session.flush()
    for item in items:
        found = existing.get(item.id) if item.id is not None else None
        if found is None:
            row = FaqEntry()  # an id not found (replace mode) gets a fresh one
            session.add(row)
            result.created += 1
        else:
            row = found
            result.updated += 1
        row.question = item.question
        row.alternatives = list(item.alternatives)
        row.answer = item.answer
        row.language = item.language
        row.tags = list(item.tags)
        row.enabled = item.enabled
        session.flush()
        result.ids.append(row.id)
    return result


def export_yaml(session: Session) -> str:
    """Every entry (enabled or not) as the YAML `import_yaml` reads back."""
    rows = session.scalars(select(FaqEntry).order_by(FaqEntry.id))
    data = [
        {
            "id": row.id,
            "question": row.question,
            "alternatives": list(row.alternatives or ()),
            "answer": row.answer,
            "language": row.language,
            "tags": list(row.tags or ()),
            "enabled": bool(row.enabled),
        }
        for row in rows
    ]
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
