"""inbox reads: each conversation's newest customer message, for unread counts without a
per-conversation message lookup (backfilled from the messages already stored); on PostgreSQL,
each indexed row's search vector stored in a generated column under the GIN index instead of
an expression index, so that a search reading rows newest first checks a row without folding
its text again (`pishkhan_fold` costs ~0.1 ms a message) and the planner has word statistics

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.search import DOCUMENTS, VECTOR_COLUMN, postgres_vector

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL = """
    UPDATE conversations SET last_inbound_message_id = (
        SELECT max(messages.id) FROM messages
        WHERE messages.conversation_id = conversations.id AND messages.direction = 'in'
    )
"""


def _sql(statement: str) -> None:
    op.get_bind().exec_driver_sql(statement)


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "last_inbound_message_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
    # One probe of ix_messages_conversation_direction_id per conversation.
    op.execute(_BACKFILL)
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversations_status_inbound",
            ["status", "last_inbound_message_id", "assignee_id", "team_id"],
            unique=False,
        )
    if op.get_bind().dialect.name == "postgresql":
        for name in DOCUMENTS:
            _sql(f"DROP INDEX IF EXISTS ix_{name}_search")
            _sql(
                f"ALTER TABLE {name} ADD COLUMN {VECTOR_COLUMN} tsvector "
                f"GENERATED ALWAYS AS ({postgres_vector(name)}) STORED"
            )
            _sql(f"CREATE INDEX ix_{name}_search ON {name} USING gin ({VECTOR_COLUMN})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in DOCUMENTS:
            _sql(f"DROP INDEX IF EXISTS ix_{name}_search")
            _sql(f"ALTER TABLE {name} DROP COLUMN {VECTOR_COLUMN}")
            _sql(f"CREATE INDEX ix_{name}_search ON {name} USING gin ({postgres_vector(name)})")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_status_inbound")
        batch_op.drop_column("last_inbound_message_id")
