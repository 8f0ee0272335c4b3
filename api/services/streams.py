"""Synchronous exports: the file itself as the answer, for requests of at most `STREAM_MAX_ROWS` rows.

`prepare_stream` validates the request exactly as `POST /export` does (catalog, columns, filters,
owner), opens one read-only REPEATABLE READ snapshot of the source, and counts the rows in it
(no further than the limit): past the limit it refuses before a byte is sent (413, naming the count
and `POST /export`). `PreparedStream.body()` then runs the format's own writer (the one the
asynchronous export runs) on a worker thread, in the same snapshot, and yields its output in
64 KiB chunks through a bounded queue: memory stays at a few chunks whatever the size, and a client
that stops reading stops the writer. A client that disconnects cancels the query.

No Dagster run, no S3 object and no row in the exports table: nothing to dedup, poll or expire.
A failure after the first byte cannot change the status any more: the connection is then closed
without the chunked encoding's last chunk, so a client sees a broken transfer, never a short file
that looks complete.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import psycopg2

from api.errors import InvalidRequest, ServiceUnavailable, TooManyRows
from api.schemas import ExportRequest
from api.security import Principal
from api.services.exports import spec_for
from export_engine import writers
from export_engine.core.catalog import Catalog, Dataset
from export_engine.core.export_spec import ExportSpec
from export_engine.core.formats import PDF_MAX_ROWS
from export_engine.core.query import select_query
from export_engine.source.database import SourceDatabase
from export_engine.source.snapshot import SnapshotSource
from export_engine.streaming import ProgressTap

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024  # small enough that a small export's first bytes leave at once
_QUEUED_CHUNKS = 8
_POLL_SECONDS = 0.2  # how soon a stopped consumer or producer notices


def _open_snapshot(source: SourceDatabase) -> SnapshotSource:
    try:
        return SnapshotSource(source).__enter__()
    except psycopg2.OperationalError as exc:
        raise ServiceUnavailable("the source database is unavailable; retry in a few seconds") from exc


def _count(snapshot: SnapshotSource, select: Any, params: dict[str, Any], limit: int) -> int:
    try:
        return snapshot.count(select, params, limit=limit)
    except psycopg2.OperationalError as exc:
        raise ServiceUnavailable("the source database is unavailable; retry in a few seconds") from exc
    except psycopg2.Error as exc:  # e.g. a catalog entry whose table is gone: not the caller's fault
        log.error("the source database refused the stream's count: %s", exc)
        raise ServiceUnavailable(
            f"the source database cannot answer this dataset now ({type(exc).__name__}); "
            "the operators can see why in the gateway's log"
        ) from exc


def _pdf_too_long() -> InvalidRequest:
    return InvalidRequest(
        f"format: a pdf statement holds at most {PDF_MAX_ROWS:,} rows and this one has more; "
        "narrow the dates or filters, or choose csv, xlsx, parquet or json"
    )


def count_rows(*, dataset: Dataset, spec: ExportSpec, source: SourceDatabase, limit: int) -> int:
    """The export's rows, counted no further than `limit` + 1 (enough to know it is over the limit)."""
    select, params = select_query(dataset, spec)
    snapshot = _open_snapshot(source)
    try:
        return _count(snapshot, select, params, limit)
    finally:
        snapshot.__exit__(None, None, None)


def check_pdf_rows(*, dataset: Dataset, spec: ExportSpec, source: SourceDatabase) -> None:
    """A PDF statement holds at most `PDF_MAX_ROWS` rows: refuse a larger one before it is queued."""
    if spec.format != "pdf":
        return
    if count_rows(dataset=dataset, spec=spec, source=source, limit=PDF_MAX_ROWS) > PDF_MAX_ROWS:
        raise _pdf_too_long()


@dataclass
class PreparedStream:
    spec: ExportSpec
    rows: int  # counted in the snapshot the body is written from
    _snapshot: SnapshotSource
    _select: Any
    _params: dict[str, Any]
    on_finish: Callable[[str, int], None] = field(default=lambda outcome, rows: None)
    timed_out: bool = False  # set when the answer passed STREAM_MAX_SECONDS and was broken off

    @property
    def media_type(self) -> str:
        return self.spec.output.content_type

    @property
    def filename(self) -> str:
        return self.spec.download_filename

    def close(self) -> None:
        self._snapshot.__exit__(None, None, None)

    async def body(self) -> AsyncGenerator[bytes, None]:
        chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=_QUEUED_CHUNKS)
        stop = threading.Event()
        written: list[int] = []
        worker = threading.Thread(
            target=self._produce, args=(chunks, stop, written), name="export-stream", daemon=True
        )
        worker.start()
        outcome = "disconnected"
        try:
            while True:
                item = await anyio.to_thread.run_sync(_next_chunk, chunks, stop)
                if item is None:
                    outcome = "completed"
                    return
                if isinstance(item, BaseException):
                    outcome = "failed"
                    log.error("export stream failed after the answer began: %s", item)
                    raise item
                if item:
                    yield item
        finally:
            stop.set()
            if worker.is_alive():
                self._snapshot.cancel()  # the client went away: stop the query, not only the writer
            with anyio.CancelScope(shield=True):  # a disconnect cancels this task: clean up regardless
                await anyio.to_thread.run_sync(worker.join)
            self.close()
            self.on_finish("deadline" if self.timed_out else outcome, written[0] if written else 0)

    def _produce(self, chunks: queue.Queue[Any], stop: threading.Event, written: list[int]) -> None:
        fmt = self.spec.output
        pipe = _QueuePipe(chunks, stop)
        try:
            with writers.encoded(fmt, pipe) as encoded:
                buffered = io.BufferedWriter(ProgressTap(encoded, None), buffer_size=CHUNK_SIZE)
                written.append(writers.write(fmt, self._snapshot, self._select, self._params, buffered))
                buffered.flush()
            _put(chunks, stop, None)
        except BaseException as exc:  # handed to the consumer, which ends the answer with it
            if not stop.is_set():
                _put(chunks, stop, exc)


class _Stopped(Exception):
    """The consumer is gone; the writer unwinds."""


class _QueuePipe(io.RawIOBase):
    def __init__(self, chunks: queue.Queue[Any], stop: threading.Event) -> None:
        super().__init__()
        self._chunks = chunks
        self._stop = stop

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        chunk = bytes(data)  # the writer reuses its buffer
        _put(self._chunks, self._stop, chunk)
        return len(chunk)


def _put(chunks: queue.Queue[Any], stop: threading.Event, item: Any) -> None:
    while not stop.is_set():
        try:
            chunks.put(item, timeout=_POLL_SECONDS)
            return
        except queue.Full:
            continue
    raise _Stopped


def _next_chunk(chunks: queue.Queue[Any], stop: threading.Event) -> Any:
    while True:
        try:
            return chunks.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            if stop.is_set():
                return None


def prepare_stream(
    *,
    principal: Principal,
    request: ExportRequest,
    catalog: Catalog,
    source: SourceDatabase,
    max_rows: int,
    writer_params: Mapping[str, Any] | None = None,
) -> PreparedStream:
    """Validate, open the snapshot and count; raises before anything is sent when the answer is refused.

    `writer_params` reach the writer beside the query's own (a PDF's `page_size`, `export_reference`)."""
    dataset, spec = spec_for(catalog, principal, request)
    select, params = select_query(dataset, spec)
    params.update(writer_params or {})
    snapshot = _open_snapshot(source)
    try:
        limit = min(max_rows, PDF_MAX_ROWS) if spec.format == "pdf" else max_rows
        rows = _count(snapshot, select, params, limit)
        if rows > limit:
            if spec.format == "pdf" and limit == PDF_MAX_ROWS:
                raise _pdf_too_long()
            raise TooManyRows(
                f"this export has more than {limit:,} rows, the most a synchronous answer holds; "
                "POST /export with the same body exports it in the background and gives a download link"
            )
    except BaseException:
        snapshot.__exit__(None, None, None)
        raise
    return PreparedStream(spec, rows, snapshot, select, params)
