"""Multi-row inserts that give back the new primary keys in the order of the rows given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session


def insert_ids(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert `rows` into `model`'s table and return their ids, row for row.

    SQLAlchemy can only keep RETURNING in parameter order on SQLite by sending one statement per
    row. SQLite gives an integer primary key the next highest value to each row in the order they
    are inserted, so one multi-row statement and its ids sorted say the same, at a fraction of
    the cost. PostgreSQL keeps SQLAlchemy's batched, order-keeping form.
    """
    if not rows:
        return []
    table = model.__table__
    (key,) = table.primary_key.columns
    if session.get_bind().dialect.name == "sqlite":
        return sorted(session.scalars(insert(model).returning(key), rows).all())
    return list(
        session.scalars(insert(model).returning(key, sort_by_parameter_order=True), rows).all()
    )
