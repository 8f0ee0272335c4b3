"""Output formats as data: each one's file extension, Content-Type and how its progress is counted.

Compression is a property of the output, not a format: `output_format("csv", "gzip")` is CSV written
into a gzip stream, so a compressed export counts its rows before compression and reports progress like
the plain one. Which code writes a format is the writers' registry (`export_engine.writers`); this
module holds no code path to it, so the request model never imports the writers.
"""

from __future__ import annotations

from dataclasses import dataclass

from export_engine.errors import ExportRequestError

MAX_DATA_ROWS_PER_SHEET = 1_048_575  # Excel's 1,048,576 rows per sheet, less the header row
PDF_MAX_ROWS = 10_000  # a statement people print (~250 pages); the PDF is built in memory


@dataclass(frozen=True)
class OutputFormat:
    name: str  # the writer's format: csv, parquet, jsonl, json, xlsx, pdf
    extension: str
    content_type: str
    lines_are_rows: bool = False  # one line per row, so counting newlines in the stream tracks progress
    reports_rows: bool = False  # the writer takes `progress=` and adds each batch's rows to it
    compression: str | None = None  # the stream the writer writes into, when not the file itself


_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

FORMATS: dict[str, OutputFormat] = {
    "csv": OutputFormat("csv", ".csv", "text/csv; charset=utf-8", lines_are_rows=True),
    "parquet": OutputFormat("parquet", ".parquet", "application/vnd.apache.parquet", reports_rows=True),
    "jsonl": OutputFormat("jsonl", ".jsonl", "application/x-ndjson; charset=utf-8", lines_are_rows=True),
    "json": OutputFormat("json", ".json", "application/json; charset=utf-8", lines_are_rows=True),
    "xlsx": OutputFormat("xlsx", ".xlsx", _XLSX, reports_rows=True),
    "pdf": OutputFormat("pdf", ".pdf", "application/pdf", reports_rows=True),  # statements, ≤ 10,000 rows
}


def _gzipped(name: str) -> OutputFormat:
    plain = FORMATS[name]
    return OutputFormat(
        name,
        plain.extension + ".gz",
        "application/gzip",
        lines_are_rows=plain.lines_are_rows,
        compression="gzip",
    )


# The text formats: Parquet compresses inside the file, and an XLSX is already a zip.
COMPRESSIONS: dict[str, dict[str, OutputFormat]] = {
    "gzip": {name: _gzipped(name) for name in ("csv", "jsonl", "json")},
}


def output_format(format: str, compression: str | None = None) -> OutputFormat:
    """The entry for a format and an optional compression; an impossible pair raises
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
