"""Export packages: `kind` ('export' | 'package') and `parts` (a package's per-dataset progress and files)

Revision ID: 0004_packages
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_packages"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "exports", sa.Column("kind", sa.String(16), nullable=False, server_default=sa.text("'export'"))
    )
    op.add_column("exports", sa.Column("parts", sa.JSON(), nullable=True))
    op.create_check_constraint(op.f("ck_exports_kind_valid"), "exports", "kind IN ('export','package')")
    op.create_index("ix_exports_owner_kind_created_at", "exports", ["owner", "kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_exports_owner_kind_created_at", table_name="exports")
    op.drop_constraint(op.f("ck_exports_kind_valid"), "exports", type_="check")
    op.drop_column("exports", "parts")
    op.drop_column("exports", "kind")
