"""search: full-text index over messages, customer names and contact points

SQLite: an FTS5 table `search_<table>` per indexed table (rowid = the row's id) holding the
folded text, kept in sync by triggers written in plain SQL (any connection, even the sqlite3
shell, keeps the index right). PostgreSQL: an IMMUTABLE `pishkhan_fold()` and GIN indexes on
`to_tsvector('simple', pishkhan_fold(...))`, which PostgreSQL keeps in sync itself.
Both fold with `storage.search.FOLD`; existing rows are indexed here.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

from storage.search import DOCUMENTS, postgres_fold_body, postgres_vector, sqlite_document

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only these columns change what is indexed; a message's delivery status updates are frequent.
_COLUMNS = {"messages": "subject, text", "customers": "name", "contact_points": "kind, value"}


def _sql(statement: str) -> None:
    # Driver SQL: the fold's literals hold ':' and '%', which must reach the database as written.
    op.get_bind().exec_driver_sql(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in DOCUMENTS:
            fts = f"search_{name}"
            _sql(f"CREATE VIRTUAL TABLE {fts} USING fts5(body, prefix='2 3')")
            new = sqlite_document(name, "new.")
            _sql(
                f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {name} BEGIN "
                f"INSERT INTO {fts}(rowid, body) VALUES (new.id, {new}); END"
            )
            _sql(
                f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {_COLUMNS[name]} ON {name} BEGIN "
                f"DELETE FROM {fts} WHERE rowid = old.id; "
                f"INSERT INTO {fts}(rowid, body) VALUES (new.id, {new}); END"
            )
            _sql(
                f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {name} BEGIN "
                f"DELETE FROM {fts} WHERE rowid = old.id; END"
            )
            _sql(f"INSERT INTO {fts}(rowid, body) SELECT id, {sqlite_document(name)} FROM {name}")
        return
    _sql(
        "CREATE FUNCTION pishkhan_fold(value text) RETURNS text "
        "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE "
        f"RETURN {postgres_fold_body()}"
    )
    for name in DOCUMENTS:
        _sql(f"CREATE INDEX ix_{name}_search ON {name} USING gin ({postgres_vector(name)})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in DOCUMENTS:
            for suffix in ("insert", "update", "delete"):
                _sql(f"DROP TRIGGER IF EXISTS search_{name}_{suffix}")
            _sql(f"DROP TABLE IF EXISTS search_{name}")
        return
    for name in DOCUMENTS:
        _sql(f"DROP INDEX IF EXISTS ix_{name}_search")
    _sql("DROP FUNCTION IF EXISTS pishkhan_fold(text)")
