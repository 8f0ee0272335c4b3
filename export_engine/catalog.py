"""The dataset catalog: which tables may be exported, by which columns they are scoped and ordered.

Requests name a dataset id; everything that becomes an SQL identifier comes from here, never from the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from export_engine.errors import CatalogError


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


def load_catalog(path: Path) -> Catalog:
    """Parse and check the catalog file; a bad entry fails loudly at start-up, not mid-export."""
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
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise CatalogError(f"catalog entry {dataset_id!r} is malformed: missing {exc}") from exc
        for column in (dataset.date_column, dataset.owner_column, *dataset.order_by):
            if column not in columns:
                raise CatalogError(f"catalog entry {dataset_id!r} names column {column!r} it does not list")
        datasets[dataset_id] = dataset
    if not datasets:
        raise CatalogError(f"catalog {path} lists no datasets")
    return Catalog(datasets)
