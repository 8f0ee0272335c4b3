"""What a user asks for, in canonical form, and the dedup key derived from it.

Everything that changes the bytes of the exported file is part of the key; nothing else is. The
canonical form makes equal files equal requests: id lists are sorted and deduplicated, amounts are
normalised (`10.50` = `10.5`), and the default column list is spelled out by `ExportSpec.for_dataset`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from export_engine.core.formats import OutputFormat, output_format
from export_engine.errors import ExportRequestError

if TYPE_CHECKING:
    from export_engine.core.catalog import Dataset


def _decimal(value: Decimal | str | int | None) -> Decimal | None:
    if value is None:
        return None
    number = Decimal(str(value))
    if not number.is_finite():
        raise ExportRequestError(f"{value!r} is not a finite number")
    return Decimal(0) if number == 0 else Decimal(format(number.normalize(), "f"))


@dataclass(frozen=True)
class Filters:
    """Request filters; `any_of` lists are kept sorted and unique, so their order never matters."""

    account_ids: tuple[str, ...] = ()
    tag_ids: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("account_ids", "tag_ids", "status"):
            object.__setattr__(self, name, tuple(sorted(set(getattr(self, name)))))
        for name in ("amount_min", "amount_max"):
            object.__setattr__(self, name, _decimal(getattr(self, name)))

    def items(self) -> Iterator[tuple[str, tuple[str, ...] | Decimal]]:
        """The filters that are set, as (name, value)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value != ():
                yield f.name, value

    def canonical(self) -> dict[str, Any]:
        return {name: list(v) if isinstance(v, tuple) else str(v) for name, v in self.items()}

    @classmethod
    def from_canonical(cls, data: dict[str, Any] | None) -> Filters:
        data = data or {}
        return cls(
            account_ids=tuple(data.get("account_ids", ())),
            tag_ids=tuple(data.get("tag_ids", ())),
            status=tuple(data.get("status", ())),
            amount_min=data.get("amount_min"),
            amount_max=data.get("amount_max"),
        )


@dataclass(frozen=True)
class ExportSpec:
    """A validated export request, scoped to its owner. `columns=()` means every catalog column."""

    table_name: str
    date_from: date
    date_to: date
    owner: str
    format: str = "csv"
    compression: str | None = None
    columns: tuple[str, ...] = ()
    filters: Filters = field(default_factory=Filters)
    column_subset: bool = False  # not every catalog column, or not in catalog order: names the file
    kind: ClassVar[str] = "export"  # the `exports.kind` of its row (a package is `PackageSpec`)

    @classmethod
    def for_dataset(
        cls,
        dataset: Dataset,
        *,
        owner: str,
        date_from: date,
        date_to: date,
        format: str = "csv",
        compression: str | None = None,
        columns: Iterable[str] | None = None,
        filters: Filters | None = None,
    ) -> ExportSpec:
        """Check a request against the catalog and canonicalise it; every refusal names the valid choices."""
        filters = filters or Filters()
        _check_span(dataset, date_from, date_to)
        if format not in dataset.formats:
            raise ExportRequestError(
                f"format: dataset {dataset.id!r} is not available as {format!r}; "
                f"valid formats: {', '.join(dataset.formats)}"
            )
        output_format(format, compression)  # raises for an invalid combination
        if format == "pdf" and columns is not None:
            raise ExportRequestError(
                "columns: a pdf statement has fixed columns (date, description, counterparty, category, "
                "amount, balance); leave `columns` out"
            )
        narrowing = [name for name, _ in filters.items() if name != "account_ids"]
        if format == "pdf" and narrowing:
            raise ExportRequestError(
                "filters: a pdf statement lists every transaction of its accounts, so that its balances "
                f"add up; only account_ids narrows it, not {', '.join(narrowing)}"
            )
        chosen = _checked_columns(dataset, columns)
        return cls(
            table_name=dataset.id,
            date_from=date_from,
            date_to=date_to,
            owner=owner,
            format=format,
            compression=compression,
            columns=chosen,
            filters=_checked_filters(dataset, filters),
            column_subset=chosen != tuple(dataset.columns),
        )

    @property
    def output(self) -> OutputFormat:
        """How the file is written, named and served (format plus compression)."""
        return output_format(self.format, self.compression)

    def canonical(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "table_name": self.table_name,
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "owner": self.owner,
            "format": self.format,
            "compression": self.compression,
            "columns": list(self.columns),
            "filters": self.filters.canonical(),
        }
        if self.column_subset:  # follows from `columns` and the catalog: kept for the name, not the key
            data["column_subset"] = True
        return data

    @classmethod
    def from_canonical(cls, data: dict[str, Any]) -> ExportSpec:
        return cls(
            table_name=data["table_name"],
            date_from=date.fromisoformat(data["date_from"]),
            date_to=date.fromisoformat(data["date_to"]),
            owner=data["owner"],
            format=data.get("format", "csv"),
            compression=data.get("compression"),
            columns=tuple(data.get("columns") or ()),
            filters=Filters.from_canonical(data.get("filters")),
            column_subset=bool(data.get("column_subset", False)),
        )

    @property
    def dedup_key(self) -> str:
        """SHA-256 of `table|from|to|owner|<other params as sorted JSON>`."""
        canonical = self.canonical()
        extra = {k: v for k, v in canonical.items() if k not in _KEY_HEAD and k not in _NOT_IN_KEY}
        head = "|".join(canonical[k] for k in _KEY_HEAD)
        payload = head + "|" + json.dumps(extra, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def object_prefix(self, reference_id: str) -> str:
        """Every object of an export lives under this prefix, one per run."""
        return f"exports/{self.table_name}/{self.date_from}_{self.date_to}/{reference_id}/"

    def object_key(self, reference_id: str, run_id: str) -> str:
        """One object per run: a second run of the export can neither overwrite nor delete the first's."""
        return f"{self.object_prefix(reference_id)}{run_id}{self.output.extension}"

    @property
    def download_filename(self) -> str:
        """`transactions_2024-01-01_2024-12-31.csv` for the whole dataset; a column subset or a filtered
        export says so and carries a short digest of its columns and filters
        (`transactions_2024-01-01_2024-12-31_columns-filtered_3f2a9c1b.csv`), so it never overwrites
        the full file, nor another subset, in a download folder."""
        base = f"{self.table_name}_{self.date_from}_{self.date_to}"
        filtered = bool(self.filters.canonical())
        marks = [m for m, on in (("columns", self.column_subset), ("filtered", filtered)) if on]
        if marks:
            shape = json.dumps(
                {"columns": list(self.columns), "filters": self.filters.canonical()}, sort_keys=True
            )
            base += f"_{'-'.join(marks)}_{hashlib.sha256(shape.encode()).hexdigest()[:8]}"
        return base + self.output.extension


_KEY_HEAD = ("table_name", "date_from", "date_to", "owner")
_NOT_IN_KEY = ("column_subset",)


def _check_span(dataset: Dataset, date_from: date, date_to: date) -> None:
    """Both ends count: 2024-01-01..2024-12-31 spans 366 days."""
    limit = dataset.max_span_days
    span = (date_to - date_from).days + 1
    if limit is not None and span > limit:
        raise ExportRequestError(
            f"date range: {date_from}..{date_to} spans {span} days; dataset {dataset.id!r} allows at most "
            f"{limit} days per export: split it into several exports"
        )


def _checked_columns(dataset: Dataset, columns: Iterable[str] | None) -> tuple[str, ...]:
    valid = f"valid columns: {', '.join(dataset.columns)}"
    if columns is None:
        return tuple(dataset.columns)
    chosen = tuple(columns)
    if not chosen:
        raise ExportRequestError(
            f"columns: the list is empty; omit it for every column, or pick from {valid}"
        )
    for column in chosen:
        if column not in dataset.columns:
            raise ExportRequestError(
                f"columns: unknown column {column!r} for dataset {dataset.id!r}; {valid}"
            )
    duplicates = sorted({c for c in chosen if chosen.count(c) > 1})
    if duplicates:
        raise ExportRequestError(f"columns: {duplicates[0]!r} is listed more than once")
    return chosen


def _checked_filters(dataset: Dataset, filters: Filters) -> Filters:
    supported = ", ".join(dataset.filters) or "none"
    for name, value in filters.items():
        dataset_filter = dataset.filters.get(name)
        if dataset_filter is None:
            raise ExportRequestError(
                f"filters: dataset {dataset.id!r} does not support the filter {name!r}; "
                f"supported filters: {supported}"
            )
        if dataset_filter.values is not None and isinstance(value, tuple):
            unknown = [v for v in value if v not in dataset_filter.values]
            if unknown:
                raise ExportRequestError(
                    f"filters.{name}: unknown value {unknown[0]!r}; "
                    f"valid values: {', '.join(dataset_filter.values)}"
                )
    low, high = filters.amount_min, filters.amount_max
    if low is not None and high is not None and low > high:
        raise ExportRequestError(f"filters: amount_min ({low}) is greater than amount_max ({high})")
    return filters
