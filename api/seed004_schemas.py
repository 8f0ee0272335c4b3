"""Seed 004's bodies (`/api/exports/...`) and how an export and its request read in them.

`export_type` names a catalog dataset, in any case (`TRANSACTIONS`); the seed's own types (EZPASS,
PVB, CURB, LEDGER_*) are taxi data this deployment does not hold. Filters: `from_/to_posting_date`
(or `from_/to_transaction_date`: a dataset has one date column) are the date range, `from_/to_amount`
the amount bounds, and `status`, `account_id`, `tag_id` take comma-separated values.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from api.errors import InvalidRequest
from api.schemas import Amount, StrictDate
from export_engine.core.catalog import Catalog
from export_engine.db.models import Export

PREFIX = "/api/exports"
# The core request's fields, as its errors name them, and the seed's names for them.
SEED_NAMES = {
    "table_name": "export_type",
    "date_from": "filters.from_posting_date",
    "date_to": "filters.to_posting_date",
    "filters.amount_min": "filters.from_amount",
    "filters.amount_max": "filters.to_amount",
    "filters.account_ids": "filters.account_id",
    "filters.tag_ids": "filters.tag_id",
}


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class ExportFilters004(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    from_posting_date: StrictDate | None = None
    to_posting_date: StrictDate | None = None
    from_transaction_date: StrictDate | None = None
    to_transaction_date: StrictDate | None = None
    from_amount: Amount | None = None
    to_amount: Amount | None = None
    status: str | None = Field(None, max_length=4000, description="comma-separated, any case: POSTED,PENDING")
    account_id: str | None = Field(None, max_length=4000, description="comma-separated account ids")
    tag_id: str | None = Field(None, max_length=4000, description="comma-separated tag ids")

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: object) -> object:
        if isinstance(data, dict):
            for name in data:
                if name not in cls.model_fields:
                    raise ValueError(
                        f"unknown filter {name!r} (this deployment exports bank data, not taxi data); "
                        f"valid filters: {', '.join(cls.model_fields)}"
                    )
        return data

    def date_range(self) -> tuple[date | None, date | None]:
        posting = (self.from_posting_date, self.to_posting_date)
        transaction = (self.from_transaction_date, self.to_transaction_date)
        if any(transaction) and any(posting) and transaction != posting:
            raise InvalidRequest(
                "filters.from_transaction_date: a dataset here has one date; give the posting dates "
                "or the transaction dates, not two different ranges"
            )
        return posting if any(posting) else transaction

    def core(self) -> dict[str, Any]:
        def values(text: str | None, lower: bool = False) -> list[str] | None:
            parts = [p.strip().lower() if lower else p.strip() for p in (text or "").split(",") if p.strip()]
            return parts or None

        found = {
            "amount_min": self.from_amount,
            "amount_max": self.to_amount,
            "status": values(self.status, lower=True),
            "account_ids": values(self.account_id),
            "tag_ids": values(self.tag_id),
        }
        return {name: value for name, value in found.items() if value is not None}


class ExportRequest004(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    export_type: str = Field(
        min_length=1, max_length=128, description="a dataset id from GET /datasets, any case"
    )
    format: Annotated[Literal["excel", "csv", "json", "pdf"], BeforeValidator(_lower)] = Field(
        description="pdf: transactions only, at most 10,000 rows"
    )
    filters: ExportFilters004 = Field(default_factory=ExportFilters004)

    def core(self, catalog: Catalog) -> dict[str, Any]:
        """The fields of the core `ExportRequest`."""
        dataset = self.export_type.lower()
        if dataset not in catalog.datasets:
            valid = ", ".join(name.upper() for name in catalog.names)
            raise InvalidRequest(
                f"export_type: unknown export type {self.export_type!r}; valid types: {valid}"
            )
        date_from, date_to = self.filters.date_range()
        return {
            "table_name": dataset,
            "format": self.format,
            "date_from": date_from.isoformat() if date_from else None,
            "date_to": date_to.isoformat() if date_to else None,
            "filters": self.filters.core(),
        }


class ExportCreated004(BaseModel):
    export_id: int
    status: str
    message: str
    status_url: str


class ExportStatus004(BaseModel):
    export_id: int
    status: str = Field(description="PENDING, RUNNING, COMPLETED, FAILED, CANCELED or EXPIRED")
    progress: int | None = Field(description="percent, 0-100; null when no total is known")
    total_records: int | None = Field(description="rows in the file, once COMPLETED")
    file_url: str | None = Field(
        description="once COMPLETED: relative to this host, e.g. /api/exports/123/download"
    )
    created_at: datetime
    completed_at: datetime | None


class MyExports004(BaseModel):
    items: list[ExportStatus004]
    total_items: int
    page: int
    per_page: int
    total_pages: int


def seed_status(export: Export) -> str:
    """The core's status names (upper case, as the seed's); a SUPERSEDED export is COMPLETED (it has its file)."""
    return "COMPLETED" if export.status == "SUPERSEDED" else export.status


def status_body(export: Export, *, progress: int | None) -> ExportStatus004:
    status = seed_status(export)
    done = status == "COMPLETED"
    return ExportStatus004(
        export_id=export.serial_id,
        status=status,
        progress=progress,
        total_records=export.row_count if done else None,
        file_url=f"{PREFIX}/{export.serial_id}/download" if done else None,
        created_at=export.created_at,
        completed_at=export.completed_at,
    )
