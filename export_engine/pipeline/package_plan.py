"""What a package holds before and after it is written: its parts, their progress, and its manifest.

`plan` lists one `Part` per dataset (its path inside the ZIP); `PackageProgress` is shared by the
streaming thread and the heartbeat; `build_manifest` describes what was written, once it has been.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from export_engine.core.catalog import Catalog, Dataset
from export_engine.core.export_spec import ExportSpec
from export_engine.core.package_spec import PackageSpec

MANIFEST_PATH = "manifest.json"
MANIFEST_VERSION = 1


def engine_version() -> str:
    try:
        return version("export-engine")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


@dataclass
class Part:
    """One dataset of a package: its progress while it is written, then its manifest entry."""

    dataset: str
    path: str
    status: str = "PENDING"  # PENDING → RUNNING → COMPLETED
    rows: int = 0
    bytes: int = 0
    seconds: float | None = None
    file: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        """What `exports.parts` stores and `GET /packages/{id}` shows."""
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "path": self.path,
            "status": self.status,
            "rows": self.rows,
            "bytes": self.bytes,
        }
        if self.seconds is not None:
            out["seconds"] = round(self.seconds, 3)
        if self.file:
            out["sha256"] = self.file["sha256"]
        return out


class PackageProgress:
    """The parts, written by the streaming thread and read by the heartbeat thread (`snapshot`)."""

    def __init__(self, parts: list[Part]) -> None:
        self.parts = parts
        self._lock = threading.Lock()

    def update(self, part: Part, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(part, name, value)

    def snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return sum(p.rows for p in self.parts), [p.view() for p in self.parts]


@dataclass(frozen=True)
class PackageResult:
    s3_key: str
    row_count: int
    file_size_bytes: int
    duration_s: float
    parts: list[Part]
    manifest: dict[str, Any]


def plan(spec: PackageSpec, catalog: Catalog) -> list[tuple[Dataset, ExportSpec, Part]]:
    return [
        (dataset, entry, Part(dataset=dataset.id, path=spec.entry_path(entry)))
        for dataset, entry in spec.entries(catalog)
    ]


def build_manifest(
    spec: PackageSpec, *, reference_id: str, created_at: datetime, parts: list[Part]
) -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION,
        "package_id": reference_id,
        "owner": spec.owner,
        "created_at": created_at.isoformat(),
        "engine_version": engine_version(),
        "request": {
            "datasets": list(spec.datasets),
            "date_from": spec.date_from.isoformat(),
            "date_to": spec.date_to.isoformat(),
            "format": spec.format,
        },
        "files": [p.file for p in parts],
    }
