"""One package, start to finish: each dataset's query → its format writer → a ZIP entry → one S3 upload.

```
source ─COPY/Arrow─▶ writer ─▶ 1 MiB buffer ─▶ ProgressTap ─▶ _Digest (sha256, bytes) ─▶ ZIP entry
                                                                     (CRC-32, data descriptor, ZIP64)
                                                                            └─▶ MultipartUploadStream ─▶ S3
```

Nothing is staged: the ZIP is written by the standard library's `zipfile` onto the upload stream, which
it sees is not seekable, so every entry is STORED with a data descriptor after its bytes (sizes and CRC
need not be known up front) and ZIP64 fields (`force_zip64`), and the central directory follows the
last entry. The writers are the single-dataset export's writers with the same query, so each entry is
byte for byte that export's file. `manifest.json` comes last: it lists what was written, and what was
written is only known once it has been.

Why `zipfile` and not stream-zip or zipstream-ng: our writers push bytes into a sink, which is what
`ZipFile.open(name, "w")` takes, and it adds no copy and no thread. stream-zip pulls member chunks from
iterables (a thread and a queue per entry to turn our writers around), and writes uncompressed members
only when their size and CRC are known before the first byte (or it buffers the member in memory);
deflating every entry instead costs CPU the 0.8× throughput target has no room for.
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from export_engine import writers
from export_engine.core.catalog import Catalog, Dataset
from export_engine.core.export_spec import ExportSpec
from export_engine.core.package_spec import PackageSpec
from export_engine.core.query import output_columns, select_query
from export_engine.delivery.bucket import S3BucketMethods
from export_engine.pipeline.package_plan import (
    MANIFEST_PATH,
    PackageProgress,
    PackageResult,
    Part,
    build_manifest,
    plan,
)
from export_engine.source.database import SourceDatabaseMethods
from export_engine.streaming import ProgressTap, RowProgress, row_chunks


class _Digest(io.RawIOBase):
    """SHA-256 and byte count of what passes through, hashed on a second thread.

    SHA-256 runs at ~300 MB/s here, as much CPU as the rest of our per-byte work together; hashlib
    releases the GIL, so a thread of its own overlaps it with the stream (CRC-32, part buffers). Each
    chunk is copied into the bounded queue (the writer reuses its buffer): at most `depth` MiB held.
    """

    def __init__(self, target: Any, depth: int = 4) -> None:
        super().__init__()
        self._target = target
        self._sha = hashlib.sha256()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._hash, name="package-sha256", daemon=True)
        self._thread.start()
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._chunks.put(bytes(view))
        self._target.write(view)
        self.bytes += view.nbytes
        return view.nbytes

    def _hash(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._sha.update(chunk)

    def finish(self) -> None:
        """Stop the hashing thread (idempotent); call on every path."""
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        self.finish()
        return self._sha.hexdigest()


class _Guard(io.RawIOBase):
    """The upload as `zipfile` sees it. Once the package has failed (`dead`), writes are dropped: the
    entry's data descriptor and the central directory that `zipfile` still writes on its way out (and
    from `ZipFile.__del__`) must neither mask the error that stopped the package nor reach an upload
    that is being aborted."""

    def __init__(self, target: Any) -> None:
        super().__init__()
        self._target = target
        self.dead = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        if self.dead:
            return memoryview(data).nbytes
        written: int = self._target.write(data)
        return written

    def flush(self) -> None:
        if not self.dead:  # a dead package's archive may be collected after its guard was closed
            super().flush()


def run_package(spec: PackageSpec, key: str, **kwargs: Any) -> PackageResult:
    """`stream_package` to the end: the package's result (tests and the benchmark)."""
    for item in stream_package(spec, key, **kwargs):
        if isinstance(item, PackageResult):
            return item
    raise AssertionError("stream_package ended without a result")  # pragma: no cover


def stream_package(
    spec: PackageSpec,
    key: str,
    *,
    reference_id: str,
    created_at: datetime,
    catalog: Catalog,
    source: SourceDatabaseMethods,
    storage: S3BucketMethods,
    progress: PackageProgress | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Part | PackageResult]:
    """Stream every dataset of the package into one ZIP object, yielding each `Part` as its entry is
    written and the `PackageResult` last. On any error, or if the caller stops iterating, the upload
    is aborted."""
    started = time.monotonic()
    steps = plan(spec, catalog)
    progress = progress or PackageProgress([part for _, _, part in steps])
    by_dataset = {p.dataset: p for p in progress.parts}
    upload = storage.start_upload(
        key, content_type=spec.output.content_type, filename=spec.download_filename, stop=stop
    )
    guard = _Guard(upload)
    with upload:
        try:
            archive = zipfile.ZipFile(guard, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
            for dataset, entry_spec, planned in steps:
                part = by_dataset.get(dataset.id, planned)
                _write_entry(archive, guard, dataset, entry_spec, part, progress, source)
                yield part
            manifest = build_manifest(
                spec, reference_id=reference_id, created_at=created_at, parts=progress.parts
            )
            archive.writestr(_info(MANIFEST_PATH), json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            archive.close()  # the central directory; then the upload completes
        except BaseException:  # an error, an interrupt, or the caller stopped iterating (GeneratorExit)
            guard.dead = True
            raise
    rows = sum(p.rows for p in progress.parts)
    yield PackageResult(key, rows, upload.bytes_written, time.monotonic() - started, progress.parts, manifest)


def _info(path: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=time.gmtime()[:6])
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _write_entry(
    archive: zipfile.ZipFile,
    guard: _Guard,
    dataset: Dataset,
    spec: ExportSpec,
    part: Part,
    progress: PackageProgress,
    source: SourceDatabaseMethods,
) -> None:
    """The single-dataset export's write path (`pipeline.export.run_export`), into a ZIP entry instead of S3."""
    started = time.monotonic()
    progress.update(part, status="RUNNING")
    select, params = select_query(dataset, spec)
    fmt = spec.output

    def report(rows: int) -> None:
        progress.update(part, rows=max(part.rows, rows), bytes=digest.bytes)

    with archive.open(_info(part.path), mode="w", force_zip64=True) as entry:
        digest = _Digest(entry)
        csv = spec.format == "csv"
        counted: Callable[[int], None] | None = None
        if fmt.lines_are_rows:
            counted = (lambda lines: report(max(lines - 1, 0))) if csv else report
        tap = ProgressTap(digest, counted, csv_quoting=csv)
        buffered = row_chunks(tap)
        extra = {"progress": RowProgress(report)} if fmt.reports_rows else {}
        try:
            rows = writers.write(fmt, source, select, params, buffered, **extra)
            buffered.flush()
        except BaseException:
            guard.dead = True  # before the entry's exit writes its data descriptor
            digest.finish()
            raise
    seconds = time.monotonic() - started
    columns = output_columns(dataset, spec)
    file = {
        "path": part.path,
        "dataset": dataset.id,
        "format": spec.format,
        "rows": rows,
        "bytes": digest.bytes,
        "sha256": digest.hexdigest(),
        "columns": [{"name": c, "type": dataset.columns[c]} for c in columns],
        "filters": {
            dataset.owner_column: spec.owner,
            dataset.date_column: {"from": spec.date_from.isoformat(), "to": spec.date_to.isoformat()},
            **spec.filters.canonical(),
        },
    }
    progress.update(part, status="COMPLETED", rows=rows, bytes=digest.bytes, seconds=seconds, file=file)
