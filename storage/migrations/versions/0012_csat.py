"""csat_surveys: satisfaction surveys sent on resolution, and their answers

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)
_REPORT_INDEXES = (
    ("conversations", "ix_conversations_created_at", ["created_at"]),
    ("events", "ix_events_type_created_at", ["type", "created_at"]),
    (
        "messages",
        "ix_messages_author_kind_created_at",
        ["author_kind", "created_at", "direction", "conversation_id"],
    ),
)


def upgrade() -> None:
    op.create_table(
        "csat_surveys",
        sa.Column("id", _ID, nullable=False),
        sa.Column("conversation_id", _ID, nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("agent_id", _ID, nullable=True),
        sa.Column("team_id", _ID, nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("sent_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("answered_at", _WHEN, nullable=True),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_csat_surveys_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_csat_surveys_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_csat_surveys_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_csat_surveys_team_id_teams"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_csat_surveys")),
        sa.UniqueConstraint("nonce", name=op.f("uq_csat_surveys_nonce")),
    )
    with op.batch_alter_table("csat_surveys") as batch:
        batch.create_index(batch.f("ix_csat_surveys_conversation_id"), ["conversation_id"])
        batch.create_index(batch.f("ix_csat_surveys_sent_at"), ["sent_at"])
        batch.create_index(
            batch.f("ix_csat_surveys_customer_id_sent_at"), ["customer_id", "sent_at"]
        )
    # Reports (routing/reports/): opened, resolved and handed over in a period; busiest hours.
    for table, name, columns in _REPORT_INDEXES:
        with op.batch_alter_table(table) as batch:
            batch.create_index(batch.f(name), columns)


def downgrade() -> None:
    for table, name, _ in _REPORT_INDEXES:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(batch.f(name))
    with op.batch_alter_table("csat_surveys") as batch:
        batch.drop_index(batch.f("ix_csat_surveys_customer_id_sent_at"))
        batch.drop_index(batch.f("ix_csat_surveys_sent_at"))
        batch.drop_index(batch.f("ix_csat_surveys_conversation_id"))
    op.drop_table("csat_surveys")
