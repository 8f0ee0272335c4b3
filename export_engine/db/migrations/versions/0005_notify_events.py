"""lifecycle events (the outbox), webhook endpoints, deliveries and Telegram links

Revision ID: 0005_notify
Revises: 0004_packages
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_notify"
down_revision = "0004_packages"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "export_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("reference_id", sa.String(36), nullable=False),
        sa.Column("occurred_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("dispatched_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_export_events"),
        sa.UniqueConstraint("id", name="uq_export_events_id"),
    )
    op.create_index("ix_export_events_owner_seq", "export_events", ["owner", "seq"])
    op.create_index(
        "ix_export_events_undispatched",
        "export_events",
        ["seq"],
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_until", TZ, nullable=True),
        sa.Column("failing_since", TZ, nullable=True),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
    )
    op.create_index("ix_webhook_endpoints_owner", "webhook_endpoints", ["owner"])
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("delivered_at", TZ, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending','delivered','failed')", name=op.f("ck_notification_deliveries_status_valid")
        ),
        sa.CheckConstraint(
            "channel IN ('webhook','telegram')", name=op.f("ck_notification_deliveries_channel_valid")
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notification_deliveries"),
    )
    op.create_index(
        "uq_notification_deliveries_event_target",
        "notification_deliveries",
        ["event_id", "channel", "target"],
        unique=True,
    )
    op.create_index(
        "ix_notification_deliveries_due",
        "notification_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_notification_deliveries_target", "notification_deliveries", ["channel", "target", "id"]
    )
    op.create_table(
        "telegram_links",
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("chat_id", sa.Text(), nullable=True),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("code_expires_at", TZ, nullable=True),
        sa.Column("linked_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("owner", name="pk_telegram_links"),
        sa.UniqueConstraint("code", name="uq_telegram_links_code"),
    )
    op.create_table(
        "telegram_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_telegram_state"),
    )


def downgrade() -> None:
    op.drop_table("telegram_state")
    op.drop_table("telegram_links")
    op.drop_table("notification_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("export_events")
