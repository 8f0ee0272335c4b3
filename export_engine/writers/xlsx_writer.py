"""XLSX through rustpy-xlsxwriter (Rust's rust_xlsxwriter, constant-memory mode) from Arrow batches.

XLSX is a zip whose directory comes last, so the workbook is written to a temporary file and then
streamed to the sink; the directory is removed on every path. Rows stream in as Arrow batches, so
memory stays at about one batch plus the library's row buffer. Each sheet holds at most 1,048,575
data rows under a frozen, bold header row with filter buttons; the row count, taken first in the
same snapshot as the rows, says how many sheets there will be. Numbers are numbers (numeric as the
double nearest to it, shown with its scale and thousands separators: `#,##0.00` for money), dates are
dates, timestamps are UTC date-times (to the microsecond), arrays are their elements joined by ", ".
Column widths come from the column types (constant-memory mode cannot measure the data), wide
enough that no date or amount shows as `###`.

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

from export_engine.core.formats import MAX_DATA_ROWS_PER_SHEET
from export_engine.streaming.progress import RowProgress
from export_engine.writers.arrow_types import (
    conform,
    is_numeric_field,
    numeric_decimal,
    xlsx_schema,
)

if TYPE_CHECKING:
    from psycopg2 import sql

    from export_engine.streaming.rows import RowSource

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


def _decimal_scale(field: pa.Field) -> int | None:
    if is_numeric_field(field):
        return int(numeric_decimal(field).scale)
    if pa.types.is_decimal(field.type):
        return int(field.type.scale)
    return None


def number_format(field: pa.Field) -> str | None:
    """The cell format a column's type asks for: dates, date-times, and decimals at their own scale."""
    if pa.types.is_date(field.type):
        return DATE_FORMAT
    if pa.types.is_timestamp(field.type):
        return DATETIME_FORMAT
    scale = _decimal_scale(field)
    if scale is not None:
        return "#,##0." + "0" * scale if scale > 0 else "#,##0"
    return None


def column_width(field: pa.Field) -> float:
    """A width (in characters) that fits the type's usual values and the header."""
    kind = field.type
    if pa.types.is_date(kind):
        typical = 12.0
    elif pa.types.is_timestamp(kind):
        typical = 20.0
    elif _decimal_scale(field) is not None:
        typical = 16.0  # -12,345,678.90 and a little room
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        typical = 12.0
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        typical = 24.0
    else:
        typical = 18.0
    return min(max(typical, len(field.name) + 4.0), 60.0)  # + 4: the header's filter button


def _layout(source: pa.Schema) -> dict[str, Any]:
    formats = {
        f.name: rustpy_xlsxwriter.Format().set_num_format(fmt)
        for f in source
        if (fmt := number_format(f)) is not None
    }
    return {
        "freeze_panes": {"general": {"row": 1, "col": 0}},
        "header_format": {"general": rustpy_xlsxwriter.Format().set_bold()},
        "autofilter": {"general": True},
        "column_widths": {"general": {f.name: column_width(f) for f in source}},
        "column_formats": {"general": formats} if formats else None,
    }


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
                **_layout(rows.reader.schema),
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
