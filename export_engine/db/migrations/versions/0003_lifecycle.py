"""object_expires_at (the promise a link is capped by) and an index for lookups by object

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exports", sa.Column("object_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE exports SET object_expires_at = completed_at + interval '24 hours' "
        "WHERE status IN ('COMPLETED', 'SUPERSEDED')"
    )
    op.create_index("ix_exports_s3_key", "exports", ["s3_key"])


def downgrade() -> None:
    op.drop_index("ix_exports_s3_key", table_name="exports")
    op.drop_column("exports", "object_expires_at")
