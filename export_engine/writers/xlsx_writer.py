"""XLSX through rustpy-xlsxwriter (Rust's rust_xlsxwriter, constant-memory mode) from Arrow batches.

XLSX is a zip whose directory comes last, so the workbook is written to a temporary file and then
streamed to the sink; the directory is removed on every path. Rows stream in as Arrow batches, so
memory stays at about one batch plus the library's row buffer. Each sheet holds at most 1,048,575
data rows under a frozen header row; the row count, taken first in the same snapshot as the rows,
says how many sheets there will be. Numbers are numbers (numeric as double), dates are dates,
timestamps are UTC date-times (to the microsecond), arrays are their elements joined by ", ".

The library reads the record batches through the Arrow C stream interface, which turns an error
raised while producing a batch into a RuntimeError; `_SheetFeed` keeps the original to re-raise it.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import rustpy_xlsxwriter

from export_engine.streaming.progress import RowProgress
from export_engine.writers import MAX_DATA_ROWS_PER_SHEET
from export_engine.writers.arrow_types import conform, is_temporal, xlsx_schema

if TYPE_CHECKING:
    from psycopg2 import sql

    from export_engine.formats import RowSource

DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
_COPY_CHUNK = 1024 * 1024


class _SheetFeed:
    """Deals one stream of batches out to consecutive sheets of at most `per_sheet` rows."""

    def __init__(
        self, batches: Iterator[pa.RecordBatch], schema: pa.Schema, per_sheet: int, progress: RowProgress
    ) -> None:
        self._batches = batches
        self._schema = schema
        self._per_sheet = per_sheet
        self._progress = progress
        self._carry: pa.RecordBatch | None = None
        self.written = 0
        self.error: BaseException | None = None

    def sheet(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self._schema, self._rows_for_one_sheet())

    def exhausted(self) -> bool:
        return self._carry is None and next(self._batches, None) is None

    def _rows_for_one_sheet(self) -> Iterator[pa.RecordBatch]:
        room = self._per_sheet
        try:
            while room > 0:
                batch = self._carry if self._carry is not None else next(self._batches, None)
                self._carry = None
                if batch is None:
                    return
                if batch.num_rows > room:
                    batch, self._carry = batch.slice(0, room), batch.slice(room)
                room -= batch.num_rows
                self.written += batch.num_rows
                self._progress.add(batch.num_rows)
                yield conform(batch, self._schema)
        except BaseException as exc:
            self.error = exc
            raise


def _date_formats(source: pa.Schema) -> dict[str, dict[str, rustpy_xlsxwriter.Format] | list[Any]] | None:
    """Dates and timestamps arrive as serial numbers (see `arrow_types`); their format makes them dates."""
    formats = {
        f.name: rustpy_xlsxwriter.Format().set_num_format(
            DATE_FORMAT if pa.types.is_date(f.type) else DATETIME_FORMAT
        )
        for f in source
        if is_temporal(f.type)
    }
    return {"general": formats} if formats else None


def write_xlsx(
    source: RowSource,
    select: sql.Composable,
    params: dict[str, Any],
    sink: Any,
    *,
    rows_per_sheet: int = MAX_DATA_ROWS_PER_SHEET,
    progress: RowProgress | None = None,
) -> int:
    with (
        source.arrow_batches(select, params, count=True) as rows,
        tempfile.TemporaryDirectory(prefix="export-xlsx-") as workdir,
    ):
        schema = xlsx_schema(rows.reader.schema)
        feed = _SheetFeed(iter(rows.reader), schema, rows_per_sheet, progress or RowProgress(None))
        sheet_count = max(1, math.ceil((rows.total or 0) / rows_per_sheet))
        path = Path(workdir) / "export.xlsx"
        try:
            rustpy_xlsxwriter.write_worksheets(
                [(f"Sheet{n}", feed.sheet()) for n in range(1, sheet_count + 1)],
                str(path),
                freeze_panes={"general": {"row": 1, "col": 0}},
                column_formats=_date_formats(rows.reader.schema),
            )
        except Exception as exc:
            if feed.error is not None and feed.error is not exc:
                raise feed.error from exc
            raise
        if not feed.exhausted() or (rows.total is not None and feed.written != rows.total):
            raise RuntimeError(f"xlsx: wrote {feed.written} rows but the snapshot holds {rows.total}")
        with path.open("rb") as workbook:
            shutil.copyfileobj(workbook, sink, _COPY_CHUNK)
    return feed.written
