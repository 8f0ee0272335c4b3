"""Request and response bodies of the gateway."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: object) -> date:
    """Only `YYYY-MM-DD` strings: no timestamps, no numbers, no datetimes silently truncated."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError(f"must be a date written as YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a real calendar date") from None


StrictDate = Annotated[date, BeforeValidator(_iso_date)]


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    table_name: str = Field(min_length=1, max_length=128, description="a dataset id from the catalog")
    date_from: StrictDate
    date_to: StrictDate
    force_refresh: bool = Field(False, strict=True)
    format: Literal["csv"] = "csv"

    @model_validator(mode="after")
    def _range_is_ordered(self) -> ExportRequest:
        if self.date_from > self.date_to:
            raise ValueError(f"date_from ({self.date_from}) is after date_to ({self.date_to})")
        return self


class ExportCreated(BaseModel):
    reference_id: str
    status: str
    created_at: datetime
    reused_from_ref: str | None = None


class ExportView(BaseModel):
    reference_id: str
    status: str
    table_name: str
    date_from: date
    date_to: date
    format: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    rows_written: int | None = None
    row_count: int | None = None
    file_size_bytes: int | None = None
    reused_from_ref: str | None = None
    error: str | None = None
    download_url: str | None = None
    expires_at: datetime | None = None
