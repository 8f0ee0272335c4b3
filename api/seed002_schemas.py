"""Seed 002's bodies (`ExportJobCreate`, `ExportJobResponse`) and how an export reads in them.

The seed's four job statuses: PENDING, PROCESSING (the core's RUNNING), COMPLETED (a SUPERSEDED
export too: its file is still there) and FAILED (a CANCELED or EXPIRED export too, with `error`
saying which). `row_count` is null until COMPLETED; `file_url` is a freshly signed URL once COMPLETED.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api.schemas import StrictDate
from api.services.export_reads import signed_download
from export_engine.db.models import Export
from export_engine.delivery.bucket import S3Storage

DATASET = "transactions"  # the seed's records
# The core request's fields, as its errors name them, and the seed's names for them.
SEED_NAMES = {"filters.account_ids": "account_id", "filters.status": "status"}

EXTENSIONS = {"csv": "csv", "json": "json", "excel": "xlsx"}

_JOB_STATUS = {
    "PENDING": "PENDING",
    "RUNNING": "PROCESSING",
    "COMPLETED": "COMPLETED",
    "SUPERSEDED": "COMPLETED",
    "FAILED": "FAILED",
    "CANCELED": "FAILED",
    "EXPIRED": "FAILED",
}
_WHY = {
    "CANCELED": "canceled before it finished; start the job again",
    "EXPIRED": "the file was deleted at the end of its retention period; start the job again",
}


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return [c.strip() for c in value.split(",") if c.strip()] or None
    return value


class ExportJobCreate(BaseModel):
    """`ExportRequest`'s fields; `format` is csv, json or excel (any case)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    account_id: str = Field(min_length=1, max_length=128)
    format: Annotated[Literal["csv", "json", "excel"], BeforeValidator(_lower)]
    columns: Annotated[list[str] | None, BeforeValidator(_comma_separated)] = Field(
        None, max_length=200, description="column names (a list, or one comma-separated string); default all"
    )
    status: str | None = Field(None, max_length=128, description="posted, pending or reversed")
    date_from: StrictDate | None = None
    date_to: StrictDate | None = None


class ExportJobResponse(BaseModel):
    job_id: str
    status: Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED"]
    row_count: int | None = Field(description="null until COMPLETED")
    file_url: str | None = Field(description="once COMPLETED: a signed download URL")
    error: str | None
    created_at: datetime
    completed_at: datetime | None


class ExportJobPage(BaseModel):
    """Newest first; pass `next_cursor` back as `cursor` for the next page (null: the last page)."""

    items: list[ExportJobResponse]
    next_cursor: str | None


def job_response(export: Export, *, storage: S3Storage, ttl_seconds: int, now: datetime) -> ExportJobResponse:
    job_status = _JOB_STATUS[export.status]
    signed = signed_download(export, storage=storage, ttl_seconds=ttl_seconds, now=now)
    return ExportJobResponse(
        job_id=export.reference_id,
        status=job_status,  # type: ignore[arg-type]
        row_count=export.row_count if job_status == "COMPLETED" else None,
        file_url=signed[0] if signed else None,
        error=export.error or _WHY.get(export.status),
        created_at=export.created_at,
        completed_at=export.completed_at,
    )


def file_name(account_id: str, day: date, fmt: str) -> str:
    """The seed's `records_{account_id}_{date}.{ext}`, with the id made safe for a header."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in account_id)
    return f"records_{safe}_{day.isoformat()}.{EXTENSIONS[fmt]}"
