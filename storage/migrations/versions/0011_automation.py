"""automation_rules and their audit trail

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "automation_rules",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("trigger", sa.String(length=40), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", _ID, nullable=True),
        sa.Column("updated_by", _ID, nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["agents.id"],
            name=op.f("fk_automation_rules_created_by_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["agents.id"],
            name=op.f("fk_automation_rules_updated_by_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_rules")),
    )
    with op.batch_alter_table("automation_rules") as batch:
        batch.create_index(batch.f("ix_automation_rules_trigger"), ["trigger"])
    op.create_table(
        "automation_audit",
        sa.Column("id", _ID, nullable=False),
        sa.Column("rule_id", _ID, nullable=True),
        sa.Column("agent_id", _ID, nullable=True),
        sa.Column("change", sa.String(length=20), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_automation_audit_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_audit")),
    )
    with op.batch_alter_table("automation_audit") as batch:
        batch.create_index(batch.f("ix_automation_audit_rule_id"), ["rule_id"])


def downgrade() -> None:
    with op.batch_alter_table("automation_audit") as batch:
        batch.drop_index(batch.f("ix_automation_audit_rule_id"))
    op.drop_table("automation_audit")
    with op.batch_alter_table("automation_rules") as batch:
        batch.drop_index(batch.f("ix_automation_rules_trigger"))
    op.drop_table("automation_rules")
