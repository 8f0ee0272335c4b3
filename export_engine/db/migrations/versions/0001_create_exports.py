"""create exports

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exports",
        sa.Column("reference_id", sa.String(36), nullable=False),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), server_default="PENDING", nullable=False),
        sa.Column("reused_from_ref", sa.String(36), nullable=True),
        sa.Column("dagster_run_id", sa.String(64), nullable=True),
        sa.Column("s3_key", sa.Text(), nullable=True),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("file_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("rows_written", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('PENDING','RUNNING','COMPLETED','FAILED','SUPERSEDED','EXPIRED','CANCELED')",
            name=op.f("ck_exports_status_valid"),
        ),
        sa.CheckConstraint("date_from <= date_to", name=op.f("ck_exports_date_range_ordered")),
        sa.CheckConstraint(
            "status <> 'COMPLETED' OR s3_key IS NOT NULL", name=op.f("ck_exports_completed_has_object")
        ),
        sa.PrimaryKeyConstraint("reference_id", name=op.f("pk_exports")),
    )
    op.create_index("ix_exports_dedup_key_status", "exports", ["dedup_key", "status", "created_at"])
    op.create_index("ix_exports_owner_created_at", "exports", ["owner", "created_at"])
    op.create_index("ix_exports_status_created_at", "exports", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_exports_status_created_at", table_name="exports")
    op.drop_index("ix_exports_owner_created_at", table_name="exports")
    op.drop_index("ix_exports_dedup_key_status", table_name="exports")
    op.drop_table("exports")
