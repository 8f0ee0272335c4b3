"""The writers' registry: which function writes a format, and the stream it writes into.

Each writer is `write(source, select, params, sink[, progress=RowProgress]) -> exact row count`, one
module per format. Writers are pure: they read through the `RowSource` protocol
(`export_engine.streaming.rows`) and write bytes to a file-like sink, so each one is testable with a
fake source and a `BytesIO`.

The Arrow writers (Parquet, XLSX, PDF) import pyarrow and their libraries only when first called: those
cost ~56 MB per process, which a CSV or JSON export should not carry.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from export_engine.core.formats import OutputFormat
from export_engine.writers.csv_writer import write_csv
from export_engine.writers.gzip_writer import ThreadedGzip
from export_engine.writers.json_writer import JsonArray, write_json, write_jsonl

Writer = Callable[..., int]  # (source, select, params, sink[, progress=RowProgress]) -> exact rows


def write_parquet(*args: Any, **kwargs: Any) -> int:
    from export_engine.writers.parquet_writer import write_parquet as write

    return write(*args, **kwargs)


def write_xlsx(*args: Any, **kwargs: Any) -> int:
    from export_engine.writers.xlsx_writer import write_xlsx as write

    return write(*args, **kwargs)


def write_pdf(*args: Any, **kwargs: Any) -> int:
    from export_engine.writers.pdf_writer import write_pdf as write

    return write(*args, **kwargs)


WRITERS: dict[str, Writer] = {
    "csv": write_csv,
    "parquet": write_parquet,
    "jsonl": write_jsonl,
    "json": write_json,
    "xlsx": write_xlsx,
    "pdf": write_pdf,
}
COMPRESSORS: dict[str, Callable[[Any], AbstractContextManager[Any]]] = {"gzip": ThreadedGzip}


def encoded(fmt: OutputFormat, sink: Any) -> AbstractContextManager[Any]:
    """The stream the writer writes into: `sink` itself, or a compressor writing into it."""
    return COMPRESSORS[fmt.compression](sink) if fmt.compression is not None else nullcontext(sink)


def write(
    fmt: OutputFormat, source: Any, select: Any, params: dict[str, Any], sink: Any, **extra: Any
) -> int:
    """Write the rows of `select` in `fmt` into `sink` (already `encoded`); returns the exact row count."""
    return WRITERS[fmt.name](source, select, params, sink, **extra)


__all__ = [
    "COMPRESSORS",
    "WRITERS",
    "JsonArray",
    "ThreadedGzip",
    "Writer",
    "encoded",
    "write",
    "write_csv",
    "write_json",
    "write_jsonl",
    "write_parquet",
    "write_pdf",
    "write_xlsx",
]
