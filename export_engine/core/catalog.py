"""The dataset catalog: which tables may be exported, by which columns they are scoped, filtered and ordered.

Requests name a dataset id; everything that becomes an SQL identifier comes from here, never from the request.
Each dataset lists the request filters it supports (and the column each one applies to) and its formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from export_engine.core.formats import FORMATS
from export_engine.errors import CatalogError

FILTER_KINDS: dict[str, str] = {
    "account_ids": "any_of",
    "tag_ids": "any_of",
    "status": "any_of",
    "amount_min": "min",
    "amount_max": "max",
}
"""Every request filter the engine implements, by kind.

`any_of` takes a non-empty list and keeps rows whose column equals one of its values (or, for an
array column, shares at least one element with it); `min`/`max` take a number, inclusive.
"""


@dataclass(frozen=True)
class DatasetFilter:
    name: str
    column: str
    kind: str
    values: tuple[str, ...] | None = None  # the only values an `any_of` filter accepts, when listed


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    description: str
    table: str
    time_grain: str
    date_column: str
    owner_column: str
    order_by: tuple[str, ...]
    columns: dict[str, str]
    filters: dict[str, DatasetFilter] = field(default_factory=dict)
    formats: tuple[str, ...] = tuple(FORMATS)
    max_span_days: int | None = None  # longest date range one export may cover; None: no limit
    whole_history_in_packages: bool = False  # `package_history: whole`: entities (accounts, tags)

    def is_array(self, column: str) -> bool:
        return self.columns[column].endswith("[]")


@dataclass(frozen=True)
class Catalog:
    datasets: dict[str, Dataset]

    def get(self, dataset_id: str) -> Dataset:
        try:
            return self.datasets[dataset_id]
        except KeyError:
            raise CatalogError(
                f"unknown table_name {dataset_id!r}; valid names: {', '.join(sorted(self.datasets))}"
            ) from None

    @property
    def names(self) -> list[str]:
        return sorted(self.datasets)


def load_catalog(path: Path, *, default_max_span_days: int | None = None) -> Catalog:
    """Parse and check the catalog file; a bad entry fails loudly at start-up, not mid-export.

    A dataset's `max_span_days` overrides `default_max_span_days` (the gateway passes
    `EXPORT_MAX_SPAN_DAYS`); with neither, its date ranges are not limited.

    Parsed once per process and version of the file: every run reads the catalog, and the YAML parse
    was 14 % of a run worker's CPU for a tiny export (py-spy, `make bench-small`). An edited file
    (new mtime or size) is parsed again.
    """
    stat = Path(path).stat()
    return _parsed(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size, default_max_span_days)


@lru_cache(maxsize=8)
def _parsed(path: str, _mtime_ns: int, _size: int, default_max_span_days: int | None) -> Catalog:
    raw = yaml.safe_load(Path(path).read_text())
    datasets: dict[str, Dataset] = {}
    for dataset_id, entry in (raw.get("datasets") or {}).items():
        try:
            columns = {str(k): str(v) for k, v in entry["columns"].items()}
            dataset = Dataset(
                id=dataset_id,
                name=entry.get("name", dataset_id),
                description=entry.get("description", ""),
                table=entry["table"],
                time_grain=entry.get("time_grain", "daily"),
                date_column=entry["date_column"],
                owner_column=entry["owner_column"],
                order_by=tuple(entry["order_by"]),
                columns=columns,
                filters=_filters(dataset_id, entry.get("filters") or {}),
                formats=tuple(entry.get("formats") or FORMATS),
                max_span_days=_span(dataset_id, entry.get("max_span_days", default_max_span_days)),
                whole_history_in_packages=_package_history(dataset_id, entry.get("package_history")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise CatalogError(f"catalog entry {dataset_id!r} is malformed: missing {exc}") from exc
        _check(dataset)
        datasets[dataset_id] = dataset
    if not datasets:
        raise CatalogError(f"catalog {path} lists no datasets")
    return Catalog(datasets)


def _package_history(dataset_id: str, value: object) -> bool:
    if value not in (None, "range", "whole"):
        raise CatalogError(f"catalog entry {dataset_id!r}: package_history must be 'range' or 'whole'")
    return value == "whole"


def _span(dataset_id: str, value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CatalogError(f"catalog entry {dataset_id!r}: max_span_days must be a whole number of days >= 1")
    return value


def _filters(dataset_id: str, raw: dict[str, object]) -> dict[str, DatasetFilter]:
    filters = {}
    for name, spec in raw.items():
        if name not in FILTER_KINDS:
            raise CatalogError(
                f"catalog entry {dataset_id!r} names unknown filter {name!r}; "
                f"known: {', '.join(FILTER_KINDS)}"
            )
        if isinstance(spec, str):
            spec = {"column": spec}
        if not isinstance(spec, dict) or "column" not in spec:
            raise CatalogError(f"catalog entry {dataset_id!r}: filter {name!r} needs a column")
        values = spec.get("values")
        filters[name] = DatasetFilter(
            name=name,
            column=str(spec["column"]),
            kind=FILTER_KINDS[name],
            values=tuple(str(v) for v in values) if values else None,
        )
    return filters


def _check(dataset: Dataset) -> None:
    named = [dataset.date_column, dataset.owner_column, *dataset.order_by]
    named += [f.column for f in dataset.filters.values()]
    for column in named:
        if column not in dataset.columns:
            raise CatalogError(f"catalog entry {dataset.id!r} names column {column!r} it does not list")
    for dataset_filter in dataset.filters.values():
        if dataset_filter.column == dataset.owner_column:
            raise CatalogError(
                f"catalog entry {dataset.id!r}: filter {dataset_filter.name!r} "
                "may not target the owner column"
            )
    unknown = [f for f in dataset.formats if f not in FORMATS]
    if unknown:
        raise CatalogError(
            f"catalog entry {dataset.id!r} lists unknown formats {unknown}; known: {', '.join(FORMATS)}"
        )
