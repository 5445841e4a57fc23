"""faq_entries and faq_suggestions: the FAQ bot's knowledge base and its review queue

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "faq_entries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("alternatives", sa.JSON(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_by", _ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["agents.id"],
            name=op.f("fk_faq_entries_updated_by_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_entries")),
    )
    with op.batch_alter_table("faq_entries") as batch:
        batch.create_index(batch.f("ix_faq_entries_language"), ["language"])
    op.create_table(
        "faq_suggestions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("conversation_id", _ID, nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("suggested_by", _ID, nullable=True),
        sa.Column("reviewed_by", _ID, nullable=True),
        sa.Column("entry_id", _ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_faq_suggestions_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["suggested_by"],
            ["agents.id"],
            name=op.f("fk_faq_suggestions_suggested_by_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by"],
            ["agents.id"],
            name=op.f("fk_faq_suggestions_reviewed_by_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["faq_entries.id"],
            name=op.f("fk_faq_suggestions_entry_id_faq_entries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_suggestions")),
    )
    with op.batch_alter_table("faq_suggestions") as batch:
        batch.create_index(batch.f("ix_faq_suggestions_conversation_id"), ["conversation_id"])
        batch.create_index(batch.f("ix_faq_suggestions_status"), ["status"])


def downgrade() -> None:
    with op.batch_alter_table("faq_suggestions") as batch:
        batch.drop_index(batch.f("ix_faq_suggestions_status"))
        batch.drop_index(batch.f("ix_faq_suggestions_conversation_id"))
    op.drop_table("faq_suggestions")
    with op.batch_alter_table("faq_entries") as batch:
        batch.drop_index(batch.f("ix_faq_entries_language"))
    op.drop_table("faq_entries")
