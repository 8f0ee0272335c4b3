"""Every writer against an in-memory source and a BytesIO sink, read back with the format's own reader.

`FakeSource` stands in for `SourceDatabaseResource`: `stream_copy` replays COPY output row by row
(as psycopg2 does), `arrow_batches` serves Arrow batches typed as the PostgreSQL ADBC driver types
them (numeric as an opaque extension over its text, with the typmod in the field metadata).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import threading
import zipfile
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg2 import sql

from export_engine import writers
from export_engine.core.formats import COMPRESSIONS, FORMATS, output_format
from export_engine.streaming import RowProgress
from export_engine.streaming.rows import ArrowRows
from export_engine.writers import (
    JsonArray,
    ThreadedGzip,
    write_csv,
    write_json,
    write_jsonl,
    write_parquet,
    write_xlsx,
)
from export_engine.writers.arrow_types import numeric_decimal

SELECT = sql.SQL("SELECT * FROM t ORDER BY id")
NUMERIC = pa.opaque(pa.string(), "numeric", "PostgreSQL")
TYPMOD_14_2 = {b"POSTGRESQL:typmod": b"917510"}  # numeric(14,2): ((14 << 16) | 2) + 4
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("txn_date", pa.date32()),
        pa.field("posted_at", pa.timestamp("us", tz="UTC")),
        pa.field("amount", NUMERIC, metadata=TYPMOD_14_2),
        pa.field("description", pa.string()),
        pa.field("tag_ids", pa.list_(pa.string())),
    ]
)
ROWS = [
    (
        1,
        date(2024, 1, 2),
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "-12.34",
        'Refund, "partial"',
        ["a", "b"],
    ),
    (2, date(2024, 1, 3), None, "0.10", "Standing order\nmonthly", []),
    (
        3,
        date(2024, 2, 29),
        datetime(2024, 2, 29, 23, 59, 59, 250000, tzinfo=UTC),
        None,
        "Café au lait ☕",
        ["c"],
    ),
    (4, date(2024, 3, 1), datetime(2024, 3, 1, 0, 0, tzinfo=UTC), "123456789012.99", None, ["d"]),
    (5, date(2024, 3, 2), datetime(2024, 3, 2, 12, 0, tzinfo=UTC), "-0.01", "back\\slash\ttab", ["e"]),
    (6, date(2024, 3, 3), None, "5.00", "", ["f"]),
    (7, date(2024, 3, 4), None, "-99999.99", "last", ["g"]),
]


def _batches(rows: list[tuple], size: int) -> list[pa.RecordBatch]:
    batches = []
    for start in range(0, len(rows), size):
        chunk = list(zip(*rows[start : start + size], strict=True))
        arrays = [
            pa.ExtensionArray.from_storage(NUMERIC, pa.array(values, pa.string()))
            if field.type == NUMERIC
            else pa.array(values, field.type)
            for field, values in zip(SCHEMA, chunk, strict=True)
        ]
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=SCHEMA))
    return batches


def read_parquet(body: bytes) -> pa.Table:
    """`ParquetFile.read`, not `pq.read_table`: the dataset reader's read-ahead can release a Python-owned
    buffer on an Arrow pool thread during interpreter shutdown, which aborts the test process."""
    return pq.ParquetFile(io.BytesIO(body)).read()


class FakeSource:
    def __init__(
        self,
        *,
        copy_rows: list[bytes] = (),
        copy_header: bool = False,
        rows: list[tuple] = (),
        batch_size: int = 3,
        fail_after_batches: int | None = None,
    ) -> None:
        self.copy_rows = list(copy_rows)
        self.copy_header = copy_header
        self.rows = list(rows)
        self.batch_size = batch_size
        self.fail_after_batches = fail_after_batches
        self.copied: list[Any] = []

    def stream_copy(self, copy_sql: Any, params: dict[str, Any], sink: Any) -> int:
        self.copied.append(copy_sql)
        for row in self.copy_rows:  # psycopg2 writes each COPY row with its own write() call
            sink.write(row)
        return len(self.copy_rows) - (1 if self.copy_header else 0)  # the server's count: data rows only

    @contextmanager
    def arrow_batches(self, select: Any, params: dict[str, Any], *, count: bool = False):
        batches = _batches(self.rows, self.batch_size)

        def produce():
            for n, batch in enumerate(batches):
                if self.fail_after_batches is not None and n == self.fail_after_batches:
                    raise OSError("connection reset mid-stream")
                yield batch

        reader = pa.RecordBatchReader.from_batches(SCHEMA, produce())
        yield ArrowRows(reader, len(self.rows) if count else None)


# -- registry -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "compression", "extension", "content_type"),
    [
        ("csv", None, ".csv", "text/csv; charset=utf-8"),
        ("csv", "gzip", ".csv.gz", "application/gzip"),
        ("jsonl", "gzip", ".jsonl.gz", "application/gzip"),
        ("json", "gzip", ".json.gz", "application/gzip"),
        ("parquet", None, ".parquet", "application/vnd.apache.parquet"),
        ("jsonl", None, ".jsonl", "application/x-ndjson; charset=utf-8"),
        ("json", None, ".json", "application/json; charset=utf-8"),
        ("xlsx", None, ".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ],
)
def test_every_output_has_its_extension_and_content_type(fmt, compression, extension, content_type):
    output = output_format(fmt, compression)
    assert (output.extension, output.content_type) == (extension, content_type)


def test_registry_lists_the_six_formats_and_gzip_for_the_text_ones():
    assert list(FORMATS) == ["csv", "parquet", "jsonl", "json", "xlsx", "pdf"]
    assert {name: list(by_format) for name, by_format in COMPRESSIONS.items()} == {
        "gzip": ["csv", "jsonl", "json"]
    }


@pytest.mark.parametrize(
    ("fmt", "compression", "message"),
    [
        (
            "parquet",
            "gzip",
            "compression: 'gzip' is only available with format 'csv', 'jsonl' or 'json', not 'parquet'",
        ),
        ("csv", "zip", "compression: unknown compression 'zip'; valid: gzip"),
        ("exe", None, "format: unknown format 'exe'; valid formats: csv, parquet, jsonl, json, xlsx, pdf"),
    ],
)
def test_impossible_outputs_are_refused_with_the_valid_choices(fmt, compression, message):
    from export_engine.errors import ExportRequestError

    with pytest.raises(ExportRequestError) as info:
        output_format(fmt, compression)
    assert str(info.value) == message


# -- csv, gzip ------------------------------------------------------------------------------------

CSV_ROWS = [
    b"id,description\n",
    b'1,"Refund, ""partial"""\n',
    b'2,"Standing order\nmonthly"\n',
    "3,Café ☕\n".encode(),
]


def test_csv_is_the_copy_output_untouched():
    sink = io.BytesIO()
    source = FakeSource(copy_rows=CSV_ROWS, copy_header=True)
    assert write_csv(source, SELECT, {}, sink) == 3
    assert sink.getvalue() == b"".join(CSV_ROWS)
    assert "FORMAT csv, HEADER" in repr(source.copied[0])


def test_csv_gzip_is_a_standard_gzip_of_the_same_bytes():
    sink = io.BytesIO()
    source = FakeSource(copy_rows=CSV_ROWS * 1000)
    output = output_format("csv", "gzip")
    with writers.encoded(output, sink) as compressed:
        assert writers.write(output, source, SELECT, {}, compressed) == len(CSV_ROWS) * 1000
    assert gzip.decompress(sink.getvalue()) == b"".join(CSV_ROWS * 1000)
    assert sink.getvalue()[:2] == b"\x1f\x8b"


def test_threaded_gzip_compresses_many_chunks_in_order():
    payload = [os.urandom(700) + b"\n" for _ in range(2000)]  # incompressible: many chunks of output
    sink = io.BytesIO()
    with ThreadedGzip(sink, chunk_size=64 * 1024) as compressed:
        for piece in payload:
            compressed.write(piece)
    assert gzip.decompress(sink.getvalue()) == b"".join(payload)


class _FailingSink:
    def __init__(self, fail_at: int) -> None:
        self.calls = 0
        self.fail_at = fail_at

    def write(self, data: bytes) -> int:
        self.calls += 1
        if self.calls >= self.fail_at:
            raise ConnectionResetError("S3 went away")
        return len(data)


def test_a_failing_sink_surfaces_in_the_writing_thread():
    failing = ThreadedGzip(_FailingSink(fail_at=2), chunk_size=1024)
    with pytest.raises(ConnectionResetError, match="S3 went away"), failing as compressed:
        for _ in range(10_000):
            compressed.write(os.urandom(512))


def test_an_error_in_the_producer_stops_the_compressor_without_a_trailer():
    sink = io.BytesIO()
    with pytest.raises(RuntimeError, match="COPY failed"), ThreadedGzip(sink, chunk_size=1024) as compressed:
        compressed.write(b"x" * 5000)
        raise RuntimeError("COPY failed")
    try:
        recovered = gzip.decompress(sink.getvalue())
    except (EOFError, gzip.BadGzipFile):
        recovered = None
    assert recovered != b"x" * 5000  # no trailer: never a complete file (the upload is aborted anyway)
    assert not any(t.name == "gzip-compress" and t.is_alive() for t in threading.enumerate())


# -- json, jsonl ----------------------------------------------------------------------------------

JSON_ROWS = [b'{"id":1,"d":"a\\\\b \\"q\\" \\n"}\n', b'{"id":2,"d":null}\n', '{"id":3,"d":"☕"}\n'.encode()]


def test_jsonl_is_one_object_per_line():
    sink = io.BytesIO()
    assert write_jsonl(FakeSource(copy_rows=JSON_ROWS), SELECT, {}, sink) == 3
    lines = sink.getvalue().decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": 1, "d": 'a\\b "q" \n'},
        {"id": 2, "d": None},
        {"id": 3, "d": "☕"},
    ]


def test_json_is_one_array_joined_by_comma_newline():
    sink = io.BytesIO()
    assert write_json(FakeSource(copy_rows=JSON_ROWS), SELECT, {}, sink) == 3
    body = sink.getvalue()
    assert body.startswith(b'[{"id":1') and body.endswith(b'{"id":3,"d":"\xe2\x98\x95"}]')
    assert body.count(b",\n") == 2
    assert [row["id"] for row in json.loads(body)] == [1, 2, 3]


def test_empty_json_is_an_empty_array():
    sink = io.BytesIO()
    assert write_json(FakeSource(copy_rows=[]), SELECT, {}, sink) == 0
    assert sink.getvalue() == b"[]"
    assert json.loads(sink.getvalue()) == []


@pytest.mark.parametrize("cut", [1, 2, 5, 7, 17, 1000])
def test_json_array_does_not_depend_on_how_the_stream_is_chunked(cut):
    stream = b"".join(JSON_ROWS)
    sink = io.BytesIO()
    array = JsonArray(sink)
    for start in range(0, len(stream), cut):
        array.write(stream[start : start + cut])
    array.close_array()
    assert json.loads(sink.getvalue()) == [json.loads(row) for row in JSON_ROWS]


# -- parquet --------------------------------------------------------------------------------------


def test_parquet_has_a_typed_schema_and_the_source_values():
    sink = io.BytesIO()
    assert write_parquet(FakeSource(rows=ROWS, batch_size=3), SELECT, {}, sink) == len(ROWS)
    table = read_parquet(sink.getvalue())
    assert table.schema.field("txn_date").type == pa.date32()
    assert table.schema.field("posted_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("amount").type == pa.decimal128(14, 2)
    assert table.schema.field("tag_ids").type == pa.list_(pa.string())
    assert pq.ParquetFile(io.BytesIO(sink.getvalue())).metadata.row_group(0).column(0).compression == "ZSTD"
    for got, row in zip(table.to_pylist(), ROWS, strict=True):
        assert got["id"] == row[0] and got["txn_date"] == row[1] and got["posted_at"] == row[2]
        assert got["amount"] == (Decimal(row[3]) if row[3] is not None else None)
        assert got["description"] == row[4] and got["tag_ids"] == row[5]


@pytest.mark.parametrize("writer", [write_parquet, write_xlsx], ids=["parquet", "xlsx"])
def test_arrow_writers_report_each_batch_of_rows(writer):
    reports: list[int] = []
    progress = RowProgress(reports.append, interval=0.0)
    rows = writer(FakeSource(rows=ROWS, batch_size=2), SELECT, {}, io.BytesIO(), progress=progress)
    assert rows == len(ROWS)
    assert reports == [2, 4, 6, 7]  # the running total after each batch, ending at the exact count
    assert progress.rows == len(ROWS)


def test_empty_parquet_is_a_valid_file_with_the_schema():
    sink = io.BytesIO()
    assert write_parquet(FakeSource(rows=[]), SELECT, {}, sink) == 0
    table = read_parquet(sink.getvalue())
    assert table.num_rows == 0
    assert table.schema.names == SCHEMA.names and table.schema.field("amount").type == pa.decimal128(14, 2)


@pytest.mark.parametrize(
    ("typmod", "expected"),
    [
        (b"917510", pa.decimal128(14, 2)),
        (b"1048582", pa.decimal128(16, 2)),
        (b"-1", pa.decimal128(38, 10)),
        (None, pa.decimal128(38, 10)),
        (str(((50 << 16) | 4) + 4).encode(), pa.decimal256(50, 4)),
    ],
)
def test_numeric_precision_and_scale_come_from_the_typmod(typmod, expected):
    metadata = {b"POSTGRESQL:typmod": typmod} if typmod is not None else None
    assert numeric_decimal(pa.field("n", NUMERIC, metadata=metadata)) == expected


# -- xlsx -----------------------------------------------------------------------------------------


def _sheets(body: bytes) -> list[Any]:
    return openpyxl.load_workbook(io.BytesIO(body)).worksheets


def test_xlsx_types_frozen_header_and_values():
    sink = io.BytesIO()
    assert write_xlsx(FakeSource(rows=ROWS), SELECT, {}, sink) == len(ROWS)
    (sheet,) = _sheets(sink.getvalue())
    assert sheet.freeze_panes == "A2"
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == tuple(SCHEMA.names)
    for got, row in zip(rows[1:], ROWS, strict=True):
        assert got[0] == row[0] and isinstance(got[0], (int, float))
        assert got[1] == datetime(row[1].year, row[1].month, row[1].day)
        assert got[2] == (row[2].replace(tzinfo=None) if row[2] else None)  # UTC wall clock
        assert got[3] == (float(row[3]) if row[3] is not None else None) and not isinstance(got[3], str)
        assert got[4] == (row[4] or None)  # Excel keeps no difference between an empty string and no value
        assert got[5] == (", ".join(row[5]) or None)
    date_cell = sheet.cell(row=2, column=2)
    assert date_cell.is_date and date_cell.number_format == "yyyy-mm-dd"
    assert sheet.cell(row=2, column=3).is_date


def test_xlsx_starts_a_new_sheet_when_one_is_full():
    sink = io.BytesIO()
    assert write_xlsx(FakeSource(rows=ROWS, batch_size=2), SELECT, {}, sink, rows_per_sheet=3) == 7
    sheets = _sheets(sink.getvalue())
    assert [s.title for s in sheets] == ["Sheet1", "Sheet2", "Sheet3"]
    ids = []
    for sheet in sheets:
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0] == tuple(SCHEMA.names) and sheet.freeze_panes == "A2"
        assert len(rows) - 1 <= 3
        ids += [r[0] for r in rows[1:]]
    assert ids == [1, 2, 3, 4, 5, 6, 7]


def test_xlsx_exactly_full_sheets_make_no_empty_extra_sheet():
    sink = io.BytesIO()
    assert write_xlsx(FakeSource(rows=ROWS[:6], batch_size=4), SELECT, {}, sink, rows_per_sheet=3) == 6
    assert [s.max_row for s in _sheets(sink.getvalue())] == [4, 4]


def test_empty_xlsx_is_one_sheet_with_the_header():
    sink = io.BytesIO()
    assert write_xlsx(FakeSource(rows=[]), SELECT, {}, sink) == 0
    (sheet,) = _sheets(sink.getvalue())
    assert list(sheet.iter_rows(values_only=True)) == [tuple(SCHEMA.names)]


def test_xlsx_reraises_the_source_error_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(OSError, match="connection reset mid-stream"):
        write_xlsx(FakeSource(rows=ROWS, batch_size=2, fail_after_batches=2), SELECT, {}, io.BytesIO())
    assert list(tmp_path.iterdir()) == []


class _DecimalSource:
    """Batches typed as `SourceDatabaseResource` hands them over: numeric already decimal128(14, 2)."""

    def __init__(self, amounts: list[str]) -> None:
        self.amounts = amounts

    @contextmanager
    def arrow_batches(self, select: Any, params: dict[str, Any], *, count: bool = False):
        schema = pa.schema(
            [pa.field("txn_date", pa.date32()), pa.field("balance_after", pa.decimal128(14, 2))]
        )
        batch = pa.record_batch(
            [
                pa.array([date(2024, 1, 1)] * len(self.amounts), pa.date32()),
                pa.array([Decimal(a) for a in self.amounts], pa.decimal128(14, 2)),
            ],
            schema=schema,
        )
        yield ArrowRows(pa.RecordBatchReader.from_batches(schema, [batch]), len(self.amounts))


def test_xlsx_money_is_the_exact_amount_with_two_decimals_and_every_column_fits():
    amounts = ["-1860.37", "3715.50", "0.10", "-12345678.90", "0.07", "1234.56"]
    sink = io.BytesIO()
    write_xlsx(_DecimalSource(amounts), SELECT, {}, sink)
    (sheet,) = _sheets(sink.getvalue())
    cells = [sheet.cell(row=n, column=2) for n in range(2, len(amounts) + 2)]
    # the nearest double to each amount (what float(Decimal) gives), not Arrow's scaled-integer cast
    assert [c.value for c in cells] == [float(Decimal(a)) for a in amounts]
    assert {c.number_format for c in cells} == {"#,##0.00"}
    assert sheet.cell(row=2, column=1).number_format == "yyyy-mm-dd"
    assert sheet.column_dimensions["A"].width >= 12  # yyyy-mm-dd plus the filter button: no ###
    assert sheet.column_dimensions["B"].width >= len("-12,345,678.90") + 1
    assert sheet.auto_filter.ref == f"A1:B{len(amounts) + 1}"
    assert sheet.freeze_panes == "A2" and sheet.cell(row=1, column=2).font.b
    with zipfile.ZipFile(io.BytesIO(sink.getvalue())) as workbook:
        xml = workbook.read("xl/worksheets/sheet1.xml").decode()
    assert "<v>-1860.37</v>" in xml and "00000" not in xml  # what Excel and LibreOffice read
