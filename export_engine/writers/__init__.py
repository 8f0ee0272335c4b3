"""One writer per output format: `write(source, select, params, sink) -> exact row count`.

Writers are pure: they read through the `RowSource` protocol (`export_engine.formats`) and write
bytes to a file-like sink, so each one is testable with a fake source and a `BytesIO`.
"""

from export_engine.writers.csv_writer import write_csv
from export_engine.writers.gzip_writer import ThreadedGzip, write_csv_gzip
from export_engine.writers.json_writer import JsonArray, write_json, write_jsonl
from export_engine.writers.parquet_writer import write_parquet
from export_engine.writers.xlsx_writer import MAX_DATA_ROWS_PER_SHEET, write_xlsx

__all__ = [
    "MAX_DATA_ROWS_PER_SHEET",
    "JsonArray",
    "ThreadedGzip",
    "write_csv",
    "write_csv_gzip",
    "write_json",
    "write_jsonl",
    "write_parquet",
    "write_xlsx",
]
