"""The export DB schema. Alembic migrations in `migrations/` are generated from and checked against this."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ExportStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SUPERSEDED = "SUPERSEDED"
    EXPIRED = "EXPIRED"
    CANCELED = "CANCELED"


ACTIVE_STATUSES = (ExportStatus.PENDING, ExportStatus.RUNNING)
FINISHED_STATUSES = (ExportStatus.COMPLETED, ExportStatus.SUPERSEDED)  # they have a file


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Export(Base):
    __tablename__ = "exports"

    reference_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(64), nullable=False)
    owner: Mapped[str] = mapped_column(Text, nullable=False)
    table_name: Mapped[str] = mapped_column(Text, nullable=False)
    date_from: Mapped[date] = mapped_column(Date, nullable=False)
    date_to: Mapped[date] = mapped_column(Date, nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default=ExportStatus.PENDING.value)
    reused_from_ref: Mapped[str | None] = mapped_column(String(36))
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    s3_key: Mapped[str | None] = mapped_column(Text)
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    rows_written: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the file is deleted: set once at completion (completed_at + RETENTION_HOURS), copied by reuses.
    object_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # 'export' (one dataset, one file) or 'package' (several datasets in one ZIP, `export_engine.core.package_spec`).
    kind: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text("'export'"))
    # A package's datasets: progress while it runs, then the manifest's `files` (None for an export).
    parts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # A per-deployment integer serial: seed 004's `export_id` (`api/routes/seed004_exports.py`).
    serial_id: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True, nullable=False)

    __table_args__ = (
        CheckConstraint(
            "status IN ('PENDING','RUNNING','COMPLETED','FAILED','SUPERSEDED','EXPIRED','CANCELED')",
            name="status_valid",
        ),
        CheckConstraint("date_from <= date_to", name="date_range_ordered"),
        CheckConstraint("status <> 'COMPLETED' OR s3_key IS NOT NULL", name="completed_has_object"),
        CheckConstraint("kind IN ('export','package')", name="kind_valid"),
        Index("ix_exports_dedup_key_status", "dedup_key", "status", "created_at"),
        Index("ix_exports_owner_created_at", "owner", "created_at"),
        Index("ix_exports_status_created_at", "status", "created_at"),
        Index("ix_exports_s3_key", "s3_key"),
        Index("ix_exports_owner_kind_created_at", "owner", "kind", "created_at"),
    )
    # Server defaults (created_at = the database's now()) come back with the INSERT.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 (SQLAlchemy reads it once)


# -- lifecycle events and their delivery (export_engine/db/events.py, export_engine/notifications/) --------
class ExportEvent(Base):
    """The outbox: one row per status change, written in the transaction of the change."""

    __tablename__ = "export_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)  # the cursor order
    id: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)  # evt_<hex>: the webhook-id
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    owner: Mapped[str] = mapped_column(Text, nullable=False)
    reference_id: Mapped[str] = mapped_column(String(36), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    # The inserting transaction (`pg_current_xact_id()`): `GET /events` pages by (xid, seq), below the
    # oldest transaction in flight, so an event that commits late is never skipped (db/events.py).
    xid: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default=text("(pg_current_xact_id()::text)::bigint")
    )
    # NULL until the dispatcher has fanned the event out to the owner's webhooks and Telegram chat.
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_export_events_owner_seq", "owner", "seq"),
        Index("ix_export_events_owner_xid_seq", "owner", "xid", "seq"),
        Index("ix_export_events_undispatched", "seq", postgresql_where=text("dispatched_at IS NULL")),
    )
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # ep_<hex>
    owner: Mapped[str] = mapped_column(Text, nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    events: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    secret: Mapped[str] = mapped_column(Text, nullable=False)  # whsec_<base64>
    previous_secret: Mapped[str | None] = mapped_column(Text)  # still signs until previous_secret_until
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (Index("ix_webhook_endpoints_owner", "owner"),)
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012


class Delivery(Base):
    """One event to one destination (a webhook endpoint or a Telegram chat), retried until it lands."""

    __tablename__ = "notification_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)  # webhook | telegram
    target: Mapped[str] = mapped_column(Text, nullable=False)  # endpoint id | chat id
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('pending','delivered','failed')", name="status_valid"),
        CheckConstraint("channel IN ('webhook','telegram')", name="channel_valid"),
        Index("uq_notification_deliveries_event_target", "event_id", "channel", "target", unique=True),
        Index(
            "ix_notification_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")
        ),
        Index("ix_notification_deliveries_target", "channel", "target", "id"),
    )
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012


class TelegramLink(Base):
    """An owner's linked chat (`/start <code>`), or a code waiting to be used (chat_id NULL)."""

    __tablename__ = "telegram_links"

    owner: Mapped[str] = mapped_column(Text, primary_key=True)
    chat_id: Mapped[str | None] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    linked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TelegramState(Base):
    """Key/value state of the bot (the long-polling offset)."""

    __tablename__ = "telegram_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
