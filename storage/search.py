"""Full-text search over messages and customers, with Persian letters and digits folded alike.

The index (migration 0002) stores a *folded* copy of each text: Arabic letter forms made Persian,
Persian/Arabic digits made Latin, ZWNJ, tatweel, bidi marks and diacritics removed (so
`می‌خواهم` and `میخواهم` are one word), punctuation made space. The fold is one character map
(`FOLD`) applied in SQL when a row is written (SQLite: FTS5 tables kept in sync by triggers;
PostgreSQL: an IMMUTABLE `pishkhan_fold()` in stored generated `search_vector` columns under GIN
indexes) and in Python to the
query here, so both sides always agree. Changing `FOLD` needs a migration that rebuilds the index.

This module does not decide who may see what: the caller passes a `scope` that narrows a query
joined to `conversations` (the inbox's own visibility rule).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    any_,
    bindparam,
    column,
    exists,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ContactPoint, Conversation, Customer, Message

_LETTERS = {
    "ي": "ی",
    "ى": "ی",
    "ك": "ک",
    "ە": "ه",
    "ة": "ه",
    "ؤ": "و",
    "إ": "ا",
    "أ": "ا",
    "ٱ": "ا",
    **{chr(0x06F0 + d): str(d) for d in range(10)},  # Persian digits
    **{chr(0x0660 + d): str(d) for d in range(10)},  # Arabic-Indic digits
}
_DROPPED = "\u200c\u200d\u200e\u200f\u0640" + "".join(
    chr(c) for c in [*range(0x064B, 0x0660), 0x0670]
)
# Punctuation is a word boundary. FTS5's tokenizer already treats it so; PostgreSQL's parser
# would keep `a@b.com` or `a-b` as one token, so there it is made space explicitly.
_PUNCTUATION = "!\"#$%&'()*+,-./;<=>?@[\\]^_`{|}~:،؛؟«»٪٫٬"

FOLD: dict[str, str] = {
    **_LETTERS,
    **dict.fromkeys(_DROPPED, ""),
    **dict.fromkeys(_PUNCTUATION, " "),
}
"""The one character map both the index and the query go through."""

MAX_INDEXED = 100_000
"""Characters of a text that are indexed (PostgreSQL's tsvector is capped at 1 MB)."""

_TABLE = str.maketrans(FOLD)
_WORD = re.compile(r"\w+")
_MAX_TOKENS = 12


def fold(value: str) -> str:
    """The folded, lower-cased form the index holds; for matching, never for display."""
    return value.translate(_TABLE).lower()


def tokens(query: str) -> list[str]:
    """The words of a query after folding; nothing else reaches the database's query syntax."""
    return _WORD.findall(fold(query).replace("_", " "))[:_MAX_TOKENS]


# --- SQL for the index (used by the migration and the queries, so they cannot drift) ---------


def sqlite_fold(expr: str) -> str:
    """`expr` folded by `replace()` (punctuation is left to the FTS5 tokenizer), as a scalar
    subquery of a few nested steps: SQLite's parser overflows on ~50 directly nested calls."""
    pairs = [(c, t) for c, t in FOLD.items() if c not in _PUNCTUATION]
    for step in range(0, len(pairs), 16):
        value = "v" if step else expr
        for char, to in pairs[step : step + 16]:
            value = f"replace({value}, '{char}', '{to}')"
        expr = f"(SELECT {value} AS v)" if not step else f"(SELECT {value} AS v FROM {expr})"
    return f"substr((SELECT v FROM {expr}), 1, {MAX_INDEXED})"


def postgres_fold_body() -> str:
    """The body of the IMMUTABLE `pishkhan_fold(value text)` function."""
    mapped = [(c, t) for c, t in FOLD.items() if t]
    dropped = [c for c, t in FOLD.items() if not t]
    source = "".join(c for c, _ in mapped) + "".join(dropped)
    target = "".join(t for _, t in mapped)
    return f"translate(left(value, {MAX_INDEXED}), {_literal(source)}, {_literal(target)})"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def message_document(prefix: str = "") -> str:
    return f"{prefix}subject || ' ' || {prefix}text"


def customer_document(prefix: str = "") -> str:
    return f"{prefix}name"


def contact_document(prefix: str = "") -> str:
    """The value, and for an Iranian phone also its national forms (`0912…`, `912…`)."""
    return (
        f"{prefix}value || CASE WHEN {prefix}kind = 'phone' AND {prefix}value LIKE '+98%' "
        f"THEN ' 0' || substr({prefix}value, 4) || ' ' || substr({prefix}value, 4) ELSE '' END"
    )


DOCUMENTS: dict[str, Callable[[str], str]] = {
    "messages": message_document,
    "customers": customer_document,
    "contact_points": contact_document,
}
"""What is indexed of each table; its SQLite FTS5 table is named `search_<table>`."""


def sqlite_folded(value: str) -> str:
    """What `sqlite_fold` makes of `value`, computed in Python (for bulk loads)."""
    return value.translate(_SQLITE_TABLE)[:MAX_INDEXED]


_SQLITE_TABLE = str.maketrans({c: t for c, t in FOLD.items() if c not in _PUNCTUATION})


def sqlite_document(table_name: str, prefix: str = "") -> str:
    """The folded document FTS5 indexes. Contact points are ASCII already (normalized emails and
    E.164 phones; punctuation is the tokenizer's job), and folding their CASE too would overflow
    SQLite's parser stack."""
    document = DOCUMENTS[table_name](prefix)
    return document if table_name == "contact_points" else sqlite_fold(document)


VECTOR_COLUMN = "search_vector"
"""PostgreSQL: the stored, generated column of each indexed table holding its
`postgres_vector()` (migration 0004), under the GIN index `ix_<table>_search`. Queries test the
column rather than the expression: a row is checked without folding its text again (~0.1 ms a
message), and ANALYZE keeps word frequencies for it, so the planner knows a common word from a
rare one (walk newest first and filter, or collect from the index)."""


def postgres_vector(table_name: str, prefix: str = "") -> str:
    """The indexed expression; a query must use this same expression to use the GIN index."""
    return f"to_tsvector('simple'::regconfig, pishkhan_fold({DOCUMENTS[table_name](prefix)}))"


# --- queries ----------------------------------------------------------------------------------

AnySelect = Select[*tuple[Any, ...]]
Scope = Callable[[AnySelect], AnySelect]
"""Narrows a query that joins `conversations` to what the caller may see."""


@dataclass(frozen=True)
class ConversationHit:
    conversation_id: int
    message_id: int
    snippet: str


@dataclass(frozen=True)
class CustomerHit:
    customer_id: int
    name: str
    contact_points: list[tuple[str, str]]


@dataclass(frozen=True)
class SearchResults:
    conversations: list[ConversationHit]
    customers: list[CustomerHit]


async def search(
    session: AsyncSession, query: str, *, scope: Scope | None = None, limit: int = 20
) -> SearchResults:
    """Conversations (newest matching message first, one hit each) and customers matching every
    word of `query`, the last word also as a prefix. `scope=None` means everything is visible.
    Words are quoted before they reach FTS5 or tsquery, so query syntax in `query` is just text."""
    words = tokens(query)
    if not words or limit < 1:
        return SearchResults([], [])
    sqlite = session.get_bind().dialect.name == "sqlite"
    match = _fts5_match(words) if sqlite else _tsquery(words)
    if not sqlite:
        # A generic plan of a prepared statement (asyncpg prepares; PostgreSQL switches after 5
        # runs) cannot see the words, so it guesses their frequency: it walks newest first for
        # a word nothing contains. Planned per query, the word statistics pick between walking
        # newest first (a common word) and collecting from the GIN index (a rare one).
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    conversations = await _conversation_hits(session, match, words, scope, limit, sqlite=sqlite)
    customers = await _customer_hits(session, match, scope, limit, sqlite=sqlite)
    return SearchResults(conversations, customers)


def _fts5_match(words: list[str]) -> str:
    quoted = [f'"{word}"' for word in words]
    if len(words[-1]) >= 2:
        quoted[-1] += "*"
    return " ".join(quoted)


def _tsquery(words: list[str]) -> str:
    quoted = [f"'{word}'" for word in words]
    if len(words[-1]) >= 2:
        quoted[-1] += ":*"
    return " & ".join(quoted)


def _matching(table_name: str, match: str, *, sqlite: bool) -> Any:
    if sqlite:
        return text(f"search_{table_name} MATCH :match").bindparams(match=match)
    return text(
        f"{table_name}.{VECTOR_COLUMN} @@ to_tsquery('simple'::regconfig, :match)"
    ).bindparams(match=match)


RARE = 2000
"""PostgreSQL: a query matching at most this many customers (or contact points) is collected
whole from the GIN index, then ordered; one matching more is read newest first and filtered.
Not for messages: there a common word's bitmap costs ~100 ms, and their word statistics are
good enough for the planner to choose (a name or a phone number is rarely in them)."""


async def _narrowed(
    session: AsyncSession, table_name: str, key: Any, match: str
) -> ColumnElement[bool] | None:
    """PostgreSQL: `key = ANY(ids of every matching row)` when there are at most `RARE` of them
    (a rare word: reading newest first would pass over nearly every row), else None (a common
    word: reading newest first finds matches at once). The planner cannot tell the two apart
    for a prefix (`word:*`, which every query ends with), so this asks the index itself: with
    sequential and plain index scans off, a bitmap scan of the GIN index is the only plan."""
    condition = _matching(table_name, match, sqlite=False)
    async with session.begin_nested() as savepoint:  # rolled back: the settings end with it
        await session.execute(
            text(
                "SELECT set_config('enable_seqscan', 'off', true), "
                "set_config('enable_indexscan', 'off', true), "
                "set_config('enable_indexonlyscan', 'off', true)"
            )
        )
        ids = (await session.scalars(select(key).where(condition).limit(RARE + 1))).all()
        await savepoint.rollback()
    if len(ids) > RARE:
        return None
    narrowed: ColumnElement[bool] = key == any_(
        bindparam(None, list(ids), type_=ARRAY(BigInteger()))
    )
    return narrowed


async def _conversation_hits(
    session: AsyncSession,
    match: str,
    words: list[str],
    scope: Scope | None,
    limit: int,
    *,
    sqlite: bool,
) -> list[ConversationHit]:
    # A conversation has many messages, so one common word fills a batch with few of them. On
    # SQLite each batch runs the match again (FTS5 merges a prefix's terms anew, ~60 ms for a
    # very common one): read plenty at once. On PostgreSQL a batch read newest first costs the
    # rows passed over, which for two words found together rarely is most of the table.
    batch = limit * 20 if sqlite else limit * 4
    query = select(Message.id, Message.conversation_id)
    if sqlite:
        fts = table("search_messages", column("rowid"))
        query = query.select_from(fts).join(Message, Message.id == fts.c.rowid)
        newest: Any = fts.c.rowid
    else:
        newest = Message.id
    query = query.join(Conversation, Conversation.id == Message.conversation_id).where(
        _matching("messages", match, sqlite=sqlite)
    )
    if scope is not None:
        query = scope(query)
    # One hit per conversation, its newest matching message: read matches newest first in
    # batches until `limit` conversations are found (a few batches at most).
    found: dict[int, int] = {}
    before: int | None = None
    for _ in range(4):
        page = query if before is None else query.where(newest < before)
        rows = (await session.execute(page.order_by(newest.desc()).limit(batch))).all()
        for message_id, conversation_id in rows:
            found.setdefault(conversation_id, message_id)
        if len(found) >= limit or len(rows) < batch:
            break
        before = rows[-1][0]
    hits = list(found.items())[:limit]
    texts = {
        row.id: (row.subject, row.text)
        for row in await session.execute(
            select(Message.id, Message.subject, Message.text).where(
                Message.id.in_([m for _, m in hits])
            )
        )
    }
    return [
        ConversationHit(conversation, message, snippet(*texts[message], words))
        for conversation, message in hits
    ]


async def _customer_hits(
    session: AsyncSession, match: str, scope: Scope | None, limit: int, *, sqlite: bool
) -> list[CustomerHit]:
    by_name = select(Customer.id.label("customer_id"))
    by_contact = select(ContactPoint.customer_id.label("customer_id"))
    # Newest first by the matched row's id: FTS5 yields its rowids in that order, where sorting
    # every match of a common name by another column would read them all.
    name_order: Any = Customer.id
    contact_order: Any = ContactPoint.id
    if sqlite:
        names = table("search_customers", column("rowid"))
        contacts = table("search_contact_points", column("rowid"))
        by_name = by_name.select_from(names).join(Customer, Customer.id == names.c.rowid)
        by_contact = by_contact.select_from(contacts).join(
            ContactPoint, ContactPoint.id == contacts.c.rowid
        )
        name_order, contact_order = names.c.rowid, contacts.c.rowid
    by_name = by_name.where(_matching("customers", match, sqlite=sqlite))
    by_contact = by_contact.where(_matching("contact_points", match, sqlite=sqlite))
    if not sqlite:
        if (rare := await _narrowed(session, "customers", Customer.id, match)) is not None:
            by_name = by_name.where(rare)
        if (rare := await _narrowed(session, "contact_points", ContactPoint.id, match)) is not None:
            by_contact = by_contact.where(rare)
    ids: list[int] = []
    for query, owner, newest in (
        (by_name, Customer.id, name_order),
        (by_contact, ContactPoint.customer_id, contact_order),
    ):
        if scope is not None:
            query = query.where(
                exists(scope(select(Conversation.id).where(Conversation.customer_id == owner)))
            )
        for customer_id in await session.scalars(query.order_by(newest.desc()).limit(limit)):
            if customer_id not in ids:
                ids.append(customer_id)
    ids = sorted(ids, reverse=True)[:limit]
    if not ids:
        return []
    names_of: dict[int, str] = {
        customer_id: name
        for customer_id, name in await session.execute(
            select(Customer.id, Customer.name).where(Customer.id.in_(ids))
        )
    }
    points: dict[int, list[tuple[str, str]]] = {customer_id: [] for customer_id in ids}
    for customer_id, kind, value in await session.execute(
        select(ContactPoint.customer_id, ContactPoint.kind, ContactPoint.value)
        .where(ContactPoint.customer_id.in_(ids))
        .order_by(ContactPoint.id)
    ):
        points[customer_id].append((kind, value))
    return [CustomerHit(i, names_of[i], points[i]) for i in ids if i in names_of]


def snippet(subject: str, body: str, words: list[str], *, width: int = 160) -> str:
    """About `width` characters of the original text around the first matched word (the body
    if it matches, else the subject), found by folding character by character."""
    for source in (body, subject):
        at = _find(source, words)
        if at is not None:
            break
    else:
        source, at = body or subject, 0
    start = max(0, at - width // 3)
    if start:
        space = source.rfind(" ", 0, start + 1)
        start = space + 1 if space >= 0 and start - space < 20 else start
    piece = " ".join(source[start : start + width].split())
    return ("…" if start else "") + piece + ("…" if start + width < len(source) else "")


def _find(source: str, words: list[str]) -> int | None:
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(source[:MAX_INDEXED]):
        for out in fold(char):
            folded.append(out)
            origin.append(index)
    flat = "".join(folded)
    for word in words:
        found = re.search(r"(?<!\w)" + re.escape(word), flat)
        if found:
            return origin[found.start()]
    return None


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's `include_name` hook: the search index is written by hand in migration 0002
    (FTS5 tables and their shadow tables, expression indexes), not described by the models, so
    autogenerate and schema comparisons leave it alone."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith("search_")
    if type_ == "index":
        return not (name.startswith("ix_") and name.endswith("_search"))
    if type_ == "column":
        return name != VECTOR_COLUMN
    return True
