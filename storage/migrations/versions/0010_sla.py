"""SLA clocks on conversations and the breaches they record

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("sla_policy", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("first_response_due_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("next_response_due_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("resolution_due_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("sla_due_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("sla_paused_at", _WHEN, nullable=True))
        batch.add_column(
            sa.Column("sla_state", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch.create_index(batch.f("ix_conversations_sla_due_at"), ["sla_due_at"])
    op.create_table(
        "sla_breaches",
        sa.Column("id", _ID, nullable=False),
        sa.Column("conversation_id", _ID, nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("policy", sa.String(length=100), nullable=False),
        sa.Column("due_at", _WHEN, nullable=False),
        sa.Column("breached_at", _WHEN, nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("team_id", _ID, nullable=True),
        sa.Column("assignee_id", _ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_sla_breaches_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_sla_breaches_team_id_teams"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["agents.id"],
            name=op.f("fk_sla_breaches_assignee_id_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_breaches")),
        sa.UniqueConstraint(
            "conversation_id", "metric", "due_at", name=op.f("uq_sla_breaches_conversation_id")
        ),
    )
    with op.batch_alter_table("sla_breaches") as batch:
        batch.create_index(batch.f("ix_sla_breaches_conversation_id"), ["conversation_id"])
        batch.create_index(batch.f("ix_sla_breaches_breached_at"), ["breached_at"])


def downgrade() -> None:
    with op.batch_alter_table("sla_breaches") as batch:
        batch.drop_index(batch.f("ix_sla_breaches_breached_at"))
        batch.drop_index(batch.f("ix_sla_breaches_conversation_id"))
    op.drop_table("sla_breaches")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index(batch.f("ix_conversations_sla_due_at"))
        for column in (
            "sla_state",
            "sla_paused_at",
            "sla_due_at",
            "resolution_due_at",
            "next_response_due_at",
            "first_response_due_at",
            "sla_policy",
        ):
            batch.drop_column(column)
