"""One writer per output format: `write(source, select, params, sink) -> exact row count`.

Writers are pure: they read through the `RowSource` protocol (`export_engine.formats`) and write
bytes to a file-like sink, so each one is testable with a fake source and a `BytesIO`.

The Arrow writers (Parquet, XLSX, PDF) import pyarrow and their libraries only when first called: those
cost ~56 MB per process, which a CSV or JSON export should not carry.
"""

from __future__ import annotations

from typing import Any

from export_engine.writers.csv_writer import write_csv
from export_engine.writers.gzip_writer import ThreadedGzip
from export_engine.writers.json_writer import JsonArray, write_json, write_jsonl

MAX_DATA_ROWS_PER_SHEET = 1_048_575  # Excel's 1,048,576 rows per sheet, less the header row
PDF_MAX_ROWS = 10_000  # a statement people print (~250 pages); the PDF is built in memory


def write_parquet(*args: Any, **kwargs: Any) -> int:
    from export_engine.writers.parquet_writer import write_parquet as write

    return write(*args, **kwargs)


def write_xlsx(*args: Any, **kwargs: Any) -> int:
    from export_engine.writers.xlsx_writer import write_xlsx as write

    return write(*args, **kwargs)


def write_pdf(*args: Any, **kwargs: Any) -> int:
    from export_engine.writers.pdf_writer import write_pdf as write

    return write(*args, **kwargs)


__all__ = [
    "MAX_DATA_ROWS_PER_SHEET",
    "PDF_MAX_ROWS",
    "JsonArray",
    "ThreadedGzip",
    "write_csv",
    "write_json",
    "write_jsonl",
    "write_parquet",
    "write_pdf",
    "write_xlsx",
]
