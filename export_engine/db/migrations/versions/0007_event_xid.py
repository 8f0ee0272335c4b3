"""export_events.xid: the inserting transaction's id, so `GET /events` pages in commit-safe order

A sequence value is taken at INSERT and becomes visible at COMMIT, so a reader paging by `seq` skips
an event that commits after a later one (review 2026-12-07 N4). Events are served in (xid, seq) order,
only below the oldest transaction still in flight. Existing rows get this migration's own xid.

Revision ID: 0007_event_xid
Revises: 0006_serial
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_event_xid"
down_revision = "0006_serial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "export_events",
        sa.Column(
            "xid",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id()::text)::bigint"),
            nullable=False,
        ),
    )
    op.create_index("ix_export_events_owner_xid_seq", "export_events", ["owner", "xid", "seq"])


def downgrade() -> None:
    op.drop_index("ix_export_events_owner_xid_seq", table_name="export_events")
    op.drop_column("export_events", "xid")
