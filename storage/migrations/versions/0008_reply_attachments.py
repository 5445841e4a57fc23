"""reply attachments: files agents upload for a reply, tied to the conversation, the uploader
and (once sent) the message that carries them

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("conversation_id", _ID, nullable=True))
        batch_op.add_column(sa.Column("uploaded_by", _ID, nullable=True))
        batch_op.add_column(sa.Column("message_id", _ID, nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_attachments_conversation_id_conversations"),
            "conversations",
            ["conversation_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            op.f("fk_attachments_uploaded_by_agents"),
            "agents",
            ["uploaded_by"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            op.f("fk_attachments_message_id_messages"),
            "messages",
            ["message_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(
            batch_op.f("ix_attachments_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(
            "ix_attachments_message_id_conversation_id",
            ["message_id", "conversation_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index("ix_attachments_message_id_conversation_id")
        batch_op.drop_index(batch_op.f("ix_attachments_conversation_id"))
        batch_op.drop_constraint(op.f("fk_attachments_message_id_messages"), type_="foreignkey")
        batch_op.drop_constraint(op.f("fk_attachments_uploaded_by_agents"), type_="foreignkey")
        batch_op.drop_constraint(
            op.f("fk_attachments_conversation_id_conversations"), type_="foreignkey"
        )
        batch_op.drop_column("message_id")
        batch_op.drop_column("uploaded_by")
        batch_op.drop_column("conversation_id")
