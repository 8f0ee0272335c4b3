"""Request and response bodies of the gateway."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from export_engine.core.catalog import FILTER_KINDS, Dataset
from export_engine.core.export_spec import Filters
from export_engine.core.formats import COMPRESSIONS

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# What every format can hold: Excel's calendar starts in 1900, and the engine works with the day after
# `date_to` (a half-open range), which must still be a date.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(9999, 12, 30)


def _iso_date(value: object) -> date:
    """Only `YYYY-MM-DD` strings: no timestamps, no numbers, no datetimes silently truncated."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError(f"must be a date written as YYYY-MM-DD, got {value!r}")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a real calendar date") from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValueError(f"{value!r} is out of range: dates run from {EARLIEST_DATE} to {LATEST_DATE}")
    return day


StrictDate = Annotated[date, BeforeValidator(_iso_date)]


def range_is_ordered(date_to: date | None, info: ValidationInfo) -> date | None:
    """A `date_to` validator for every body with a date range; on `date_to`, so the 422 names a field
    a form can show the message next to."""
    date_from = info.data.get("date_from")
    if date_from is not None and date_to is not None and date_from > date_to:
        raise ValueError(f"date_from ({date_from}) is after date_to ({date_to})")
    return date_to


FormatName = Literal["csv", "parquet", "jsonl", "json", "xlsx", "pdf"]
ExportStatusName = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "SUPERSEDED", "EXPIRED", "CANCELED"]
Value = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


FORMAT_ALIASES = {"excel": "xlsx"}  # seeds 002 and 004 call it excel


def _format_alias(value: object) -> object:
    return FORMAT_ALIASES.get(value, value) if isinstance(value, str) else value


def _one_or_more(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _not_empty(values: list[str]) -> list[str]:
    if not values:
        raise ValueError("must list at least one value; leave the filter out to keep every row")
    return values


ValueList = Annotated[list[Value], Field(max_length=1000), AfterValidator(_not_empty)]
Amount = Annotated[Decimal, Field(max_digits=20, decimal_places=6, allow_inf_nan=False)]


class ExportFilters(BaseModel):
    """Narrow the export; which filters a dataset supports is in `GET /datasets`. Lists match any value."""

    model_config = ConfigDict(extra="forbid")

    account_ids: ValueList | None = None
    tag_ids: ValueList | None = Field(None, description="rows sharing at least one tag with the list")
    status: Annotated[ValueList | None, BeforeValidator(_one_or_more)] = None
    amount_min: Amount | None = Field(None, description="inclusive")
    amount_max: Amount | None = Field(None, description="inclusive")

    @model_validator(mode="before")
    @classmethod
    def _known_filters(cls, data: object) -> object:
        if isinstance(data, dict):
            for name in data:
                if name not in FILTER_KINDS:
                    raise ValueError(f"unknown filter {name!r}; valid filters: {', '.join(FILTER_KINDS)}")
        return data

    def to_filters(self) -> Filters:
        return Filters(
            account_ids=tuple(self.account_ids or ()),
            tag_ids=tuple(self.tag_ids or ()),
            status=tuple(self.status or ()),
            amount_min=self.amount_min,
            amount_max=self.amount_max,
        )


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    table_name: str = Field(min_length=1, max_length=128, description="a dataset id from `GET /datasets`")
    date_from: StrictDate | None = Field(
        None, description="first day, inclusive; default: the day of your first row in the dataset"
    )
    date_to: StrictDate | None = Field(
        None, description="last day, inclusive; default: today (BUSINESS_TIMEZONE)"
    )
    force_refresh: bool = Field(False, strict=True)
    format: Annotated[FormatName, BeforeValidator(_format_alias)] = Field(
        "csv", description="`excel` is accepted for xlsx; pdf: a printable statement, transactions only"
    )
    compression: Literal["gzip"] | None = Field(None, description="gzip: with format csv, jsonl or json")
    columns: list[Value] | None = Field(None, max_length=200, description="a subset, in order; default all")
    filters: ExportFilters = Field(default_factory=ExportFilters)

    _range_is_ordered = field_validator("date_to")(range_is_ordered)


class ExportCreated(BaseModel):
    reference_id: str
    status: str
    created_at: datetime
    reused_from_ref: str | None = None
    status_url: str | None = Field(None, description="where to poll the export (also the `Location` header)")
    download_url: str | None = Field(None, description="a reused file: a freshly signed URL at once")
    expires_at: datetime | None = None


class ExportView(BaseModel):
    reference_id: str
    status: str
    table_name: str
    date_from: date
    date_to: date
    format: str
    compression: str | None = None
    columns: list[str] | None = None
    filters: dict[str, Any] | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    rows_written: int | None = None
    rows_estimated: int | None = Field(
        None,
        description="while PENDING/RUNNING: the rows the export is expected to write (GET one export only)",
    )
    rows_estimated_exact: bool | None = Field(
        None, description="true: a count; false: the planner's estimate"
    )
    progress: int | None = Field(
        None, ge=0, le=100, description="percent: rows_written / rows_estimated, capped at 99 until COMPLETED"
    )
    row_count: int | None = None
    file_size_bytes: int | None = None
    reused_from_ref: str | None = None
    error: str | None = None
    download_url: str | None = None
    expires_at: datetime | None = None


class ExportPage(BaseModel):
    """The caller's exports, newest first; pass `next_cursor` back as `cursor` for the next page."""

    items: list[ExportView]
    next_cursor: str | None = None


class ColumnView(BaseModel):
    name: str
    type: str


class FilterView(BaseModel):
    name: str
    column: str
    kind: str = Field(description="any_of: a list, rows matching any value; min/max: an inclusive bound")
    values: list[str] | None = Field(None, description="the accepted values, when the dataset restricts them")


class DatasetView(BaseModel):
    id: str
    name: str
    description: str
    time_grain: str
    date_column: str
    columns: list[ColumnView]
    filters: list[FilterView]
    formats: list[str]
    compressions: dict[str, list[str]] = Field(description="compression -> the formats it applies to")

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> DatasetView:
        return cls(
            id=dataset.id,
            name=dataset.name,
            description=dataset.description,
            time_grain=dataset.time_grain,
            date_column=dataset.date_column,
            columns=[ColumnView(name=n, type=t) for n, t in dataset.columns.items()],
            filters=[
                FilterView(
                    name=f.name, column=f.column, kind=f.kind, values=list(f.values) if f.values else None
                )
                for f in dataset.filters.values()
            ],
            formats=list(dataset.formats),
            compressions={
                name: [f for f in by_format if f in dataset.formats]
                for name, by_format in COMPRESSIONS.items()
            },
        )


class DatasetList(BaseModel):
    datasets: list[DatasetView]


class FilterValues(BaseModel):
    """The caller's own values of one `any_of` filter (e.g. their account ids), for a pick-list."""

    dataset: str
    filter: str
    values: list[str]
    truncated: bool = Field(description="more values match than `limit`: narrow them with `q`")
