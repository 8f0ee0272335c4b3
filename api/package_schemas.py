"""Request and response bodies of `/packages` (kept apart from the export bodies: they evolve apart)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas import StrictDate, Value, range_is_ordered

PackageFormatName = Literal["csv", "jsonl", "parquet"]


class PackageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    datasets: list[Value] | None = Field(
        None, max_length=100, description="dataset ids from `GET /datasets`; default: every dataset"
    )
    date_from: StrictDate | None = Field(None, description="default: the first date of your data")
    date_to: StrictDate | None = Field(None, description="default: today (BUSINESS_TIMEZONE)")
    format: PackageFormatName = "csv"
    force_refresh: bool = Field(False, strict=True)

    _range_is_ordered = field_validator("date_to")(range_is_ordered)


class PackageCreated(BaseModel):
    reference_id: str
    status: str
    created_at: datetime
    reused_from_ref: str | None = None
    status_url: str
    download_url: str | None = Field(None, description="a reused package: a freshly signed URL at once")
    expires_at: datetime | None = None


class PackagePart(BaseModel):
    """One dataset of a package: its progress, then (COMPLETED) its entry's rows, bytes and SHA-256."""

    dataset: str
    path: str
    status: Literal["PENDING", "RUNNING", "COMPLETED"]
    rows: int = 0
    bytes: int = 0
    seconds: float | None = None
    sha256: str | None = None


class PackageView(BaseModel):
    reference_id: str
    status: str
    datasets: list[str]
    date_from: date
    date_to: date
    format: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    rows_written: int | None = Field(None, description="while RUNNING: rows written so far, every dataset")
    parts: list[PackagePart]
    row_count: int | None = None
    file_size_bytes: int | None = None
    reused_from_ref: str | None = None
    error: str | None = None
    download_url: str | None = None
    expires_at: datetime | None = None


class PackagePage(BaseModel):
    """The caller's packages, newest first; pass `next_cursor` back as `cursor` for the next page."""

    items: list[PackageView]
    next_cursor: str | None = None
