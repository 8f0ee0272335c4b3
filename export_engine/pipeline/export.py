"""One export, start to finish: query → COPY stream → pipelined multipart upload → S3 object.

The Dagster op and the benchmark both call `run_export`, so what is measured is what runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from export_engine import writers
from export_engine.core.catalog import Catalog
from export_engine.core.export_spec import ExportSpec
from export_engine.core.query import select_query
from export_engine.delivery.bucket import S3BucketMethods
from export_engine.pipeline.parallel import can_split, export_slices
from export_engine.source.database import SourceDatabaseMethods
from export_engine.streaming import ProgressTap, RowProgress, row_chunks


@dataclass(frozen=True)
class ExportResult:
    s3_key: str
    row_count: int
    file_size_bytes: int
    duration_s: float

    @property
    def rows_per_second(self) -> float:
        return self.row_count / self.duration_s if self.duration_s > 0 else 0.0


def run_export(
    spec: ExportSpec,
    key: str,
    *,
    catalog: Catalog,
    source: SourceDatabaseMethods,
    storage: S3BucketMethods,
    on_progress: Callable[[int], None] | None = None,
    parallel: int = 1,
    stop: threading.Event | None = None,
    writer_params: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Stream the export into its S3 object; on any error the multipart upload is aborted.

    `parallel` > 1 streams CSV / JSON lines as that many date slices at once (`export_engine.pipeline.parallel`).
    Setting `stop` (from another thread) makes the next write raise `UploadStopped` and abort.
    `writer_params` reach the writer beside the query's own (the PDF statement's `export_reference`
    and `page_size`); the query uses none of them.
    """
    started = time.monotonic()
    dataset = catalog.get(spec.table_name)
    select, params = select_query(dataset, spec)
    params.update(writer_params or {})
    fmt = spec.output
    upload = storage.start_upload(
        key, content_type=fmt.content_type, filename=spec.download_filename, stop=stop
    )
    # The upload completes on success and aborts on any exception (an interrupt too); a compressor
    # inside it finishes its trailer first, or is abandoned before the abort.
    with upload, writers.encoded(fmt, upload) as encoded:
        if parallel > 1 and can_split(dataset, spec):
            row_count = export_slices(
                dataset, spec, source=source, upload=upload, slices=parallel, on_progress=on_progress
            )
        else:
            csv = spec.format == "csv"
            counted = on_progress if fmt.lines_are_rows else None
            tap = ProgressTap(  # before any compressor: it counts the rows' own newlines
                encoded, _header_excluded(counted) if csv else counted, csv_quoting=csv
            )
            buffered = row_chunks(tap)
            extra = {"progress": RowProgress(on_progress)} if fmt.reports_rows else {}
            row_count = writers.write(fmt, source, select, params, buffered, **extra)
            buffered.flush()
    return ExportResult(key, row_count, upload.bytes_written, time.monotonic() - started)


def _header_excluded(on_progress: Callable[[int], None] | None) -> Callable[[int], None] | None:
    if on_progress is None:
        return None
    return lambda lines: on_progress(max(lines - 1, 0))
