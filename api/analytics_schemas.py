"""Bodies of seed 001's `/api/analytics/exports`, key for key as its document prints them.

Its own names (`job_id`, `dataset_id`, `start_date`/`end_date`, top-level `account_ids`/`tag_ids`),
lower-case statuses and explicit `null`s; `api/routes/analytics_exports.py` translates them to the
one export service.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.schemas import StrictDate, Value

IdList = Annotated[list[Value], Field(max_length=1000)]


class AnalyticsExportRequest(BaseModel):
    """`POST /api/analytics/exports`. Dates are optional (the document's own curl sends none): a
    missing `start_date` is the day of your first row, a missing `end_date` today. An empty id list
    is no filter."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    dataset_id: str = Field(min_length=1, max_length=128, description="a dataset id from `GET /datasets`")
    format: Literal["csv", "parquet"] = "csv"
    start_date: StrictDate | None = Field(None, description="first day, inclusive (YYYY-MM-DD)")
    end_date: StrictDate | None = Field(None, description="last day, inclusive (YYYY-MM-DD)")
    account_ids: IdList | None = None
    tag_ids: IdList | None = Field(None, description="rows sharing at least one tag with the list")

    @field_validator("end_date")
    @classmethod
    def _ordered(cls, end_date: date | None, info: ValidationInfo) -> date | None:
        start_date = info.data.get("start_date")
        if start_date is not None and end_date is not None and start_date > end_date:
            raise ValueError(f"start_date ({start_date}) is after end_date ({end_date})")
        return end_date


class AnalyticsExportCreated(BaseModel):
    """202: the job the export runs as (a reused file or an export in flight is answered the same way,
    its `status` says which)."""

    job_id: str
    status: str = Field(description="pending, running or completed")
    message: str


class AnalyticsExportStatus(BaseModel):
    """Pending or running (and the other unfinished states): no link yet, `null` where unset."""

    job_id: str
    status: str = Field(description="pending, running, failed, canceled, expired or superseded")
    dataset_id: str
    dataset_name: str
    format: str
    download_url: str | None
    expires_at: datetime | None
    created_at: datetime
    completed_at: datetime | None


class AnalyticsExportCompleted(BaseModel):
    """Completed: the file's size and a signed URL valid for one hour, signed again on every request."""

    job_id: str
    status: Literal["completed"]
    dataset_id: str
    dataset_name: str
    format: str
    row_count: int
    file_size_bytes: int
    download_url: str | None = Field(description="null only if the file is gone meanwhile")
    expires_at: datetime | None
    created_at: datetime
    completed_at: datetime | None


class AnalyticsExportFailed(AnalyticsExportStatus):
    """Failed or canceled: the status body plus the stored reason (not in the document)."""

    status: Literal["failed", "canceled"]
    error: str | None
