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
    # 'export' (one dataset, one file) or 'package' (several datasets in one ZIP, `export_engine.package`).
    kind: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text("'export'"))
    # A package's datasets: progress while it runs, then the manifest's `files` (None for an export).
    parts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

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
