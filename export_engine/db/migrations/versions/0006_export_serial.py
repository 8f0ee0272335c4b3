"""exports.serial_id: a per-deployment integer serial (seed 004's integer `export_id`)

Adding an identity column numbers the existing rows in one table rewrite.

Revision ID: 0006_serial
Revises: 0005_notify
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_serial"
down_revision = "0005_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exports", sa.Column("serial_id", sa.BigInteger(), sa.Identity(), nullable=False))
    op.create_unique_constraint(op.f("uq_exports_serial_id"), "exports", ["serial_id"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_exports_serial_id"), "exports", type_="unique")
    op.drop_column("exports", "serial_id")
