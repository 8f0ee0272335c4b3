"""One CSV or JSON lines export from N parallel COPY streams, stitched in order into the one S3 object.

One COPY stream is bound by one PostgreSQL backend's CPU (and `row_to_json` costs the backend ~2.5×
what CSV does). When the export's order starts with its date column, the date range splits into N
contiguous slices whose results, concatenated in order, are byte for byte the single query's
result: each slice runs its own COPY on its own connection and thread and writes its own piece of
the multipart upload (`MultipartUploadStream.split`), only the first slice writes the CSV header,
and the row count is the sum of the slices' exact counts.

All slices read one snapshot: the first connection exports it (`pg_export_snapshot`) and the others
import it before any COPY starts, as `pg_dump --jobs` does, so the file is what one query would have
returned at one instant, however the table changes meanwhile.

Slices are whole days of equal length; with data spread evenly over time they carry equal rows.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import psycopg2.errors
from psycopg2 import sql

from export_engine.core.catalog import Dataset
from export_engine.core.export_spec import ExportSpec
from export_engine.core.query import copy_csv, copy_json_lines, select_query
from export_engine.delivery.multipart import MultipartUploadStream
from export_engine.source.database import SourceDatabaseMethods
from export_engine.streaming import ProgressTap, Throttle, row_chunks

_POLL = 0.2  # seconds between checks of the slices


SPLITTABLE_FORMATS = ("csv", "jsonl")  # one row per line, uncompressed: pieces concatenate


def can_split(dataset: Dataset, spec: ExportSpec) -> bool:
    """CSV or JSON lines of a dataset ordered by its `date` column first: date slices concatenate exactly."""
    return (
        spec.format in SPLITTABLE_FORMATS
        and getattr(spec, "compression", None) is None
        and bool(dataset.order_by)
        and dataset.order_by[0] == dataset.date_column
        and dataset.columns.get(dataset.date_column) == "date"
        and (spec.date_to - spec.date_from).days >= 1
    )


def date_slices(date_from: date, date_to: date, count: int) -> list[tuple[date, date]]:
    """`count` contiguous ranges of whole days covering date_from..date_to (fewer if there are fewer days)."""
    days = (date_to - date_from).days + 1
    count = max(1, min(count, days))
    bounds = [date_from + timedelta(days=days * i // count) for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1] - timedelta(days=1)) for i in range(count)]


def export_slices(
    dataset: Dataset,
    spec: ExportSpec,
    *,
    source: SourceDatabaseMethods,
    upload: MultipartUploadStream,
    slices: int,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Stream the export as `slices` parallel COPYs into `upload`; returns the exact data row count."""
    ranges = date_slices(spec.date_from, spec.date_to, slices)
    with ExitStack() as stack:
        connections = [stack.enter_context(source.connect()) for _ in ranges]
        _share_one_snapshot(connections)
        pieces = upload.split(len(ranges))
        workers = []
        for index, (first, last) in enumerate(ranges):
            select, params = select_query(dataset, replace(spec, date_from=first, date_to=last))
            if spec.format == "jsonl":
                copy = copy_json_lines(select)
            else:
                copy = copy_csv(select) if index == 0 else _copy_csv_without_header(select)
            with connections[index].cursor() as cur:
                statement = cur.mogrify(copy, params)
            workers.append(_Slice(connections[index], statement, pieces[index], csv=spec.format == "csv"))
        return _run(workers, on_progress, header_lines=1 if spec.format == "csv" else 0)


def _copy_csv_without_header(select: sql.Composable) -> sql.Composed:
    return sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(select)


def _share_one_snapshot(connections: list[Any]) -> None:
    for connection in connections:
        connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
    with connections[0].cursor() as cur:
        cur.execute("SELECT pg_export_snapshot()")
        snapshot = cur.fetchone()[0]
    for connection in connections[1:]:
        with connection.cursor() as cur:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))


class _Slice(threading.Thread):
    """One COPY stream into one piece of the upload, on its own thread and connection."""

    def __init__(self, connection: Any, statement: bytes, piece: Any, *, csv: bool) -> None:
        super().__init__(name="export-slice", daemon=True)
        self.connection = connection
        self.statement = statement
        self.tap = ProgressTap(piece, _ignore, csv_quoting=csv)
        self.rows = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            buffered = row_chunks(self.tap)
            with self.connection.cursor() as cur:
                cur.copy_expert(self.statement, buffered)
                self.rows = cur.rowcount
            buffered.flush()
        except BaseException as exc:
            self.error = exc

    def cancel(self) -> None:
        with contextlib.suppress(psycopg2.Error):  # best effort: the connection closes right after anyway
            self.connection.cancel()


def _run(workers: list[_Slice], on_progress: Callable[[int], None] | None, *, header_lines: int) -> int:
    for worker in workers:
        worker.start()
    throttle = Throttle()
    try:
        while any(worker.is_alive() for worker in workers):
            for worker in workers:
                worker.join(_POLL / len(workers))
            if any(worker.error is not None for worker in workers):
                break
            if on_progress is not None and throttle.due():
                on_progress(max(sum(worker.tap.rows for worker in workers) - header_lines, 0))
    finally:
        _stop_all(workers)
    failed = _first_error(workers)
    if failed is not None:
        raise failed
    return sum(worker.rows for worker in workers)


def _stop_all(workers: list[_Slice]) -> None:
    """After a failure (or an interrupt) cancel every COPY still running and wait for the threads."""
    if any(worker.is_alive() for worker in workers):
        for worker in workers:
            if worker.is_alive():
                worker.cancel()
    for worker in workers:
        worker.join()


def _first_error(workers: list[_Slice]) -> BaseException | None:
    """The failure that stopped the export, not the cancellations it caused."""
    errors = [worker.error for worker in workers if worker.error is not None]
    original = [e for e in errors if not isinstance(e, psycopg2.errors.QueryCanceled)]
    return (original or errors)[0] if errors else None


def _ignore(rows: int) -> None:
    """Slices count rows for the coordinator, which reports their sum."""
