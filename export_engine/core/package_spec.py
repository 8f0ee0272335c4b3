"""An export package: several of one owner's datasets in one ZIP with a manifest ("everything I have").

A package is a kind of export (`exports.kind = 'package'`): it has the same row, state machine, dedup
lock, reconciler, retention and DELETE; only what it writes differs (`export_engine.pipeline.package`).
Its canonical request is the dedup key's input, as for an export: the dataset list (sorted, unique),
the date range, the owner and the format. Each dataset becomes one `ExportSpec` (`entries`), the very
spec a single-dataset export of it would have, so an entry's bytes are that export's file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from export_engine.core.catalog import Catalog, Dataset
from export_engine.core.export_spec import ExportSpec
from export_engine.errors import CatalogError, ExportRequestError

PACKAGE_FORMATS = ("csv", "jsonl", "parquet")
HISTORY_START = date(1900, 1, 1)  # a `package_history: whole` dataset starts here (the earliest date)
PACKAGE_TABLE = "package"  # the `table_name` of a package's row (it spans several datasets)


@dataclass(frozen=True)
class ZipOutput:
    """How a package is served (the counterpart of an export's `OutputFormat`)."""

    extension: str = ".zip"
    content_type: str = "application/zip"


@dataclass(frozen=True)
class PackageSpec:
    """A validated package request, scoped to its owner; `datasets` in catalog-name order."""

    owner: str
    datasets: tuple[str, ...]
    date_from: date
    date_to: date
    format: str = "csv"
    kind: ClassVar[str] = "package"
    table_name: ClassVar[str] = PACKAGE_TABLE
    output: ClassVar[ZipOutput] = ZipOutput()

    @classmethod
    def for_request(
        cls,
        catalog: Catalog,
        *,
        owner: str,
        datasets: Iterable[str] | None,
        date_from: date,
        date_to: date,
        format: str = "csv",
    ) -> PackageSpec:
        """Check against the catalog; every refusal names the valid choices. `datasets=None`: every
        dataset available in `format`."""
        if format not in PACKAGE_FORMATS:
            raise ExportRequestError(
                f"format: a package is written as {', '.join(PACKAGE_FORMATS)}; not {format!r}"
            )
        if date_from > date_to:
            raise ExportRequestError(f"date_to: date_from ({date_from}) is after date_to ({date_to})")
        if datasets is None:
            chosen = tuple(n for n in catalog.names if format in catalog.get(n).formats)
        else:
            asked = list(datasets)
            if not asked:
                raise ExportRequestError(
                    f"datasets: the list is empty; omit it for every dataset, or pick from "
                    f"{', '.join(catalog.names)}"
                )
            for name in asked:
                try:
                    catalog.get(name)
                except CatalogError as exc:
                    raise ExportRequestError(
                        f"datasets: unknown dataset {name!r}; valid names: {', '.join(catalog.names)}"
                    ) from exc
            duplicates = sorted({n for n in asked if asked.count(n) > 1})
            if duplicates:
                raise ExportRequestError(f"datasets: {duplicates[0]!r} is listed more than once")
            chosen = tuple(sorted(asked))
        spec = cls(owner=owner, datasets=chosen, date_from=date_from, date_to=date_to, format=format)
        spec.entries(catalog)  # every dataset must take the format
        return spec

    def entries(self, catalog: Catalog) -> list[tuple[Dataset, ExportSpec]]:
        """Each dataset's export spec: the package's range, or its whole history up to `date_to`.

        The date range is checked once for the package: a package is the owner's whole history by
        design, so a dataset's `max_span_days` (a bound on one export's size) does not apply to it.
        """
        out = []
        for name in self.datasets:
            dataset = catalog.get(name)
            try:
                spec = ExportSpec.for_dataset(
                    dataset,
                    owner=self.owner,
                    date_from=self.date_to,
                    date_to=self.date_to,
                    format=self.format,
                )
            except ExportRequestError as exc:
                raise ExportRequestError(f"datasets: {name!r}: {exc}") from exc
            start = HISTORY_START if dataset.whole_history_in_packages else self.date_from
            out.append((dataset, dataclasses.replace(spec, date_from=start)))
        return out

    def entry_path(self, spec: ExportSpec) -> str:
        """The entry's name inside the ZIP: `transactions.csv`."""
        return f"{spec.table_name}{spec.output.extension}"

    def canonical(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "owner": self.owner,
            "datasets": list(self.datasets),
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "format": self.format,
        }

    @classmethod
    def from_canonical(cls, data: dict[str, Any]) -> PackageSpec:
        return cls(
            owner=data["owner"],
            datasets=tuple(data["datasets"]),
            date_from=date.fromisoformat(data["date_from"]),
            date_to=date.fromisoformat(data["date_to"]),
            format=data.get("format", "csv"),
        )

    @property
    def dedup_key(self) -> str:
        """SHA-256 of `package|from|to|owner|<datasets and format as sorted JSON>`: never an export's key."""
        head = "|".join((PACKAGE_TABLE, self.date_from.isoformat(), self.date_to.isoformat(), self.owner))
        extra = {"datasets": list(self.datasets), "format": self.format}
        payload = head + "|" + json.dumps(extra, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def object_prefix(self, reference_id: str) -> str:
        return f"exports/{PACKAGE_TABLE}/{self.date_from}_{self.date_to}/{reference_id}/"

    def object_key(self, reference_id: str, run_id: str) -> str:
        return f"{self.object_prefix(reference_id)}{run_id}{self.output.extension}"

    @property
    def download_filename(self) -> str:
        return f"{PACKAGE_TABLE}_{self.date_from}_{self.date_to}_{self.format}{self.output.extension}"


def stored_spec(params: dict[str, Any]) -> ExportSpec | PackageSpec:
    """The spec stored on an `exports` row, whichever kind it is."""
    if params.get("kind") == PackageSpec.kind:
        return PackageSpec.from_canonical(params)
    return ExportSpec.from_canonical(params)
