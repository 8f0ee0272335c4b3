"""Rows written, reported about once a second: estimated from a byte stream, or counted per batch."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

_QUOTES_AND_NEWLINES = bytes(b for b in range(256) if b not in b'"\n')


MIB = 1024 * 1024
ROW_CHUNK_SIZE = MIB


def row_chunks(raw: Any) -> io.BufferedWriter:
    """psycopg2 hands a COPY's output over one row per `write`; behind this 1 MiB buffer the Python
    layers downstream (progress tap, JSON array, part buffers) run once per megabyte, not per row.
    Call `flush()` when the COPY ends."""
    return io.BufferedWriter(raw, buffer_size=ROW_CHUNK_SIZE)


class Throttle:
    """`due()` is true at most once per `interval` seconds: the one cadence of every `rows_written`
    report (each report is a write to the export database)."""

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._next = time.monotonic() + interval

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._interval
        return True


class ProgressTap(io.RawIOBase):
    """Forwards writes to `target`; `on_progress(rows)` is called at most every `interval` seconds.

    Sits behind an `io.BufferedWriter`, so it sees ~1 MiB chunks that start and end on row
    boundaries (the COPY writers hand the buffer one whole row per write). Counting every newline
    would cost more CPU than the rest of our per-byte work together (`bytes.count` runs at ~1 GB/s),
    so the tap counts rows in the first chunk and in one chunk per report, and scales the bytes
    written by the rows per byte of those samples. With `csv_quoting`, newlines inside quoted CSV
    fields are not rows. The estimate never goes down; the exact count comes from the database
    when the stream ends. With no `on_progress` nothing is counted.

    `target.write` must be done with the bytes when it returns (`MultipartUploadStream` copies them):
    the tap passes on the writer's reused buffer without copying it.
    """

    def __init__(
        self,
        target: Any,
        on_progress: Callable[[int], None] | None,
        interval: float = 1.0,
        *,
        csv_quoting: bool = False,
    ) -> None:
        super().__init__()
        self._target = target
        self._on_progress = on_progress
        self._throttle = Throttle(interval)
        self._csv_quoting = csv_quoting
        self._sample_due = on_progress is not None
        self._sampled_bytes = 0
        self._sampled_rows = 0
        self._rows = 0
        self.bytes = 0

    @property
    def rows(self) -> int:
        """Rows written so far (header included): exact for the sampled chunks, scaled for the rest."""
        if self._sampled_bytes:
            self._rows = max(self._rows, round(self.bytes * self._sampled_rows / self._sampled_bytes))
        return self._rows

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        if self._sample_due:
            chunk = bytes(data)
            self._sampled_bytes += size
            self._sampled_rows += csv_row_ends(chunk) if self._csv_quoting else chunk.count(b"\n")
            self._sample_due = False
        self._target.write(data)
        self.bytes += size
        if self._on_progress is not None and self._throttle.due():
            self._on_progress(self.rows)
            self._sample_due = True
        return size


def csv_row_ends(chunk: bytes) -> int:
    """Newlines outside quoted fields in CSV text that starts at a row boundary.

    `""` inside a quoted field never changes whether a later byte is quoted, so after dropping every
    byte but quotes and newlines, and then every adjacent pair of quotes, the text alternates between
    outside and inside at each remaining quote.
    """
    marks = chunk.translate(None, _QUOTES_AND_NEWLINES).replace(b'""', b"")
    inside = sum(map(len, marks.split(b'"')[1::2]))
    return len(marks) - marks.count(b'"') - inside


class RowProgress:
    """For writers that know their rows (Arrow batches): `add(n)` per batch, reported at most every
    `interval` seconds, so a Parquet or XLSX export shows `rows_written` rising like a CSV one."""

    def __init__(self, on_progress: Callable[[int], None] | None, interval: float = 1.0) -> None:
        self._on_progress = on_progress
        self._throttle = Throttle(interval)
        self.rows = 0

    def add(self, rows: int) -> None:
        self.rows += rows
        if self._on_progress is not None and self._throttle.due():
            self._on_progress(self.rows)
