"""Output formats: how each one is written, and its file extension and Content-Type.

A writer streams the result of an already-composed SELECT from the source database into a binary
sink (anything with `write(bytes)`) and returns the exact number of data rows. The writers live in
`export_engine.writers`, one module per format; this module is the registry and the protocol they
read through. Compression is a property of the output, not a format: `output_format("csv", "gzip")`
is CSV's writer writing into a gzip stream (`FormatSpec.open`), so a compressed export counts its
rows before compression and reports progress like the plain one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from psycopg2 import sql

from export_engine.errors import ExportRequestError
from export_engine.writers import (
    ThreadedGzip,
    write_csv,
    write_json,
    write_jsonl,
    write_parquet,
    write_pdf,
    write_xlsx,
)

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class ArrowRows:
    """A query result as Arrow record batches; `total` is the exact row count when it was asked for."""

    reader: pa.RecordBatchReader
    total: int | None = None


class RowSource(Protocol):
    """What a writer needs from the source database (see `SourceDatabaseResource`)."""

    def stream_copy(self, copy_sql: sql.Composable, params: dict[str, Any], sink: Any) -> int: ...

    def arrow_batches(
        self, select: sql.Composable, params: dict[str, Any], *, count: bool = False
    ) -> AbstractContextManager[ArrowRows]: ...


Writer = Callable[..., int]  # (source, select, params, sink[, progress=RowProgress]) -> exact rows


@dataclass(frozen=True)
class FormatSpec:
    extension: str
    content_type: str
    write: Writer
    lines_are_rows: bool = False  # one line per row, so counting newlines in the stream tracks progress
    reports_rows: bool = False  # the writer takes `progress=` and adds each batch's rows to it
    compressor: Callable[[Any], AbstractContextManager[Any]] | None = None

    def open(self, sink: Any) -> AbstractContextManager[Any]:
        """The stream the writer writes into: `sink` itself, or a compressor writing into it."""
        return self.compressor(sink) if self.compressor is not None else nullcontext(sink)


_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

FORMATS: dict[str, FormatSpec] = {
    "csv": FormatSpec(".csv", "text/csv; charset=utf-8", write_csv, lines_are_rows=True),
    "parquet": FormatSpec(".parquet", "application/vnd.apache.parquet", write_parquet, reports_rows=True),
    "jsonl": FormatSpec(".jsonl", "application/x-ndjson; charset=utf-8", write_jsonl, lines_are_rows=True),
    "json": FormatSpec(".json", "application/json; charset=utf-8", write_json, lines_are_rows=True),
    "xlsx": FormatSpec(".xlsx", _XLSX, write_xlsx, reports_rows=True),
    "pdf": FormatSpec(".pdf", "application/pdf", write_pdf, reports_rows=True),  # statements, ≤ 10,000 rows
}


def _gzipped(name: str) -> FormatSpec:
    plain = FORMATS[name]
    return FormatSpec(
        plain.extension + ".gz",
        "application/gzip",
        plain.write,
        lines_are_rows=plain.lines_are_rows,
        compressor=ThreadedGzip,
    )


# The text formats: Parquet compresses inside the file, and an XLSX is already a zip.
COMPRESSIONS: dict[str, dict[str, FormatSpec]] = {
    "gzip": {name: _gzipped(name) for name in ("csv", "jsonl", "json")},
}


def output_format(format: str, compression: str | None = None) -> FormatSpec:
    """The registry entry for a format and an optional compression; an impossible pair raises
    `ExportRequestError` naming the valid choices."""
    if format not in FORMATS:
        raise ExportRequestError(f"format: unknown format {format!r}; valid formats: {', '.join(FORMATS)}")
    if compression is None:
        return FORMATS[format]
    if compression not in COMPRESSIONS:
        raise ExportRequestError(
            f"compression: unknown compression {compression!r}; valid: {', '.join(COMPRESSIONS)}"
        )
    by_format = COMPRESSIONS[compression]
    if format not in by_format:
        *others, last = (repr(name) for name in by_format)
        choices = f"{', '.join(others)} or {last}" if others else last
        raise ExportRequestError(
            f"compression: {compression!r} is only available with format {choices}, not {format!r}"
        )
    return by_format[format]
