"""messages.provider_id: the provider's id for a reply (an email's Message-ID), indexed, so a
delivery report without our token finds its reply without scanning the messages' metadata

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends: no SQLite table rebuild (which would drop the
    # search triggers on messages).
    op.add_column("messages", sa.Column("provider_id", sa.String(length=500), nullable=True))
    # Replies sent before this revision kept the id in their metadata only.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE messages SET provider_id = metadata ->> 'provider_id' "
            "WHERE direction = 'out' AND metadata ->> 'provider_id' IS NOT NULL"
        )
    else:
        op.execute(
            "UPDATE messages SET provider_id = json_extract(metadata, '$.provider_id') "
            "WHERE direction = 'out' AND json_extract(metadata, '$.provider_id') IS NOT NULL"
        )
    op.create_index("ix_messages_provider_id", "messages", ["provider_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_provider_id", table_name="messages")
    op.drop_column("messages", "provider_id")
