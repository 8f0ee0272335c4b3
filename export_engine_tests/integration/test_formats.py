"""Every format through `run_export` against the real PostgreSQL and S3, read back with its own reader.

`edge_transactions` holds two users' rows interleaved, with the values that break exporters: NULLs,
unicode, commas, quotes and newlines inside text, backslashes, empty strings, negative amounts.
Values are compared with the source rows as psycopg2 reads them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import openpyxl
import psycopg2
import psycopg2.errors
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg2 import sql

from export_engine.core.catalog import Catalog, Dataset
from export_engine.core.export_spec import ExportSpec, Filters
from export_engine.core.query import select_query
from export_engine.pipeline.export import run_export
from export_engine.runs.op_lifecycle import is_permanent
from export_engine.writers import write_xlsx
from export_engine_tests.helpers import expected_csv
from export_engine_tests.unit.test_writers import read_parquet

OUTPUTS = [
    ("csv", None),
    ("csv", "gzip"),
    ("parquet", None),
    ("jsonl", None),
    ("jsonl", "gzip"),
    ("json", None),
    ("json", "gzip"),
    ("xlsx", None),
]
OUTPUT_IDS = ["csv", "csv.gz", "parquet", "jsonl", "jsonl.gz", "json", "json.gz", "xlsx"]
EDGE_A, EDGE_B = "edge-user-a", "edge-user-b"
RANGE = (date(2024, 1, 1), date(2024, 12, 31))

EDGE_SQL = """
DROP TABLE IF EXISTS edge_transactions;
CREATE TABLE edge_transactions (LIKE transactions INCLUDING ALL);
INSERT INTO edge_transactions VALUES
 (1, %(a)s, 'acct-a-1', '2024-01-01', '2024-01-01 08:00:00+00', -12.34, 'USD',
  'Refund, "partial"', 'ACME, Inc.', 'dining', '{t1,t2}', 'posted', 100.00),
 (2, %(b)s, 'acct-b-1', '2024-01-01', '2024-01-01 09:00:00+00', 99.99, 'EUR',
  'b''s row', NULL, 'rent', '{t1}', 'posted', NULL),
 (3, %(a)s, 'acct-a-2', '2024-01-02', NULL, 0.00, 'GBP',
  E'Standing order\\nmonthly\\r\\nwith CRLF', NULL, NULL, '{}', 'pending', NULL),
 (4, %(b)s, 'acct-b-2', '2024-01-02', NULL, -1.00, 'USD', 'other user', 'x', 'y', '{t9}', 'posted', 1.00),
 (5, %(a)s, 'acct-a-1', '2024-02-29', '2024-02-29 23:59:59.123456+00', -999999999999.99, 'EUR',
  E'back\\\\slash \\\\n not a newline, tab\\there', '', 'travel', '{"with,comma","with \\"quote\\""}',
  'reversed', -0.01),
 (6, %(a)s, 'acct-a-2', '2024-06-30', '2024-06-30 12:00:00+00', 123456789012.99, 'JPY',
  'Café au lait ☕ 東京 👩‍💻 e\u0301', 'Zoë', 'groceries', '{t2}', 'posted', 0.10),
 (7, %(b)s, 'acct-b-1', '2024-06-30', NULL, -5.55, 'USD', 'still b', NULL, NULL, '{t2}', 'pending', NULL),
 (8, %(a)s, 'acct-a-1', '2024-12-31', '2024-12-31 23:00:00+00', -0.01, 'USD', '"', ',', '=1+1', '{t3}',
  'posted', 5.00);
GRANT SELECT ON edge_transactions TO export_reader;
"""


@pytest.fixture(scope="module")
def edge(stack, catalog) -> Catalog:
    """A copy of the `transactions` dataset over `edge_transactions`."""
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(EDGE_SQL, {"a": EDGE_A, "b": EDGE_B})
    return Catalog({"edge": replace(catalog.get("transactions"), id="edge", table="edge_transactions")})


def _export(spec: ExportSpec, catalog: Catalog, source, storage) -> tuple[bytes, dict[str, Any], int]:
    result = run_export(
        spec, spec.object_key(str(uuid.uuid4()), "run-1"), catalog=catalog, source=source, storage=storage
    )
    obj = storage.client.get_object(Bucket=storage.bucket, Key=result.s3_key)
    return obj["Body"].read(), obj, result.row_count


def _source_rows(admin_url: str, dataset: Dataset, spec: ExportSpec) -> list[dict[str, Any]]:
    select, params = select_query(dataset, spec)
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute(select, params)
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# -- readers: each format back to Python values comparable with psycopg2's -------------------------


def _typed_json(value: Any, pg_type: str) -> Any:
    if value is None:
        return None
    if pg_type == "date":
        return date.fromisoformat(value)
    if pg_type == "timestamptz":
        return datetime.fromisoformat(value)
    return value


def _read(fmt: str, compression: str | None, body: bytes, dataset: Dataset) -> list[dict[str, Any]]:
    types = dataset.columns
    if compression == "gzip":
        body = gzip.decompress(body)
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(body.decode())))
    if fmt in ("jsonl", "json"):
        text = body.decode()
        objects = (
            json.loads(text, parse_float=Decimal)
            if fmt == "json"
            else [json.loads(line, parse_float=Decimal) for line in text.splitlines()]
        )
        return [{k: _typed_json(v, types[k]) for k, v in obj.items()} for obj in objects]
    if fmt == "parquet":
        return read_parquet(body).to_pylist()
    sheets = openpyxl.load_workbook(io.BytesIO(body)).worksheets
    rows: list[dict[str, Any]] = []
    for sheet in sheets:
        header, *data = sheet.iter_rows(values_only=True)
        rows += [{k: _cell(v, types[k]) for k, v in zip(header, row, strict=True)} for row in data]
    return rows


def _cell(value: Any, pg_type: str) -> Any:
    if isinstance(
        value, str
    ):  # control characters are stored as _xHHHH_ (Excel decodes them; openpyxl does not)
        return re.sub(r"_x([0-9A-F]{4})_", lambda m: chr(int(m.group(1), 16)), value)
    if pg_type == "timestamptz" and value is not None:
        return _to_ms(value)
    return value


def _to_ms(moment: datetime) -> datetime:
    """Excel keeps a date-time as a double of days: compare to the millisecond."""
    return moment.replace(microsecond=round(moment.microsecond, -3) % 1_000_000)


def _as_written(fmt: str, row: dict[str, Any], dataset: Dataset) -> dict[str, Any]:
    """A source row as the format represents it (CSV: text; XLSX: doubles, UTC wall clock, joined lists)."""
    if fmt == "csv":
        return {k: _csv_text(v) for k, v in row.items()}
    if fmt != "xlsx":
        return row
    shown: dict[str, Any] = {}
    for name, value in row.items():
        pg_type = dataset.columns[name]
        if value is None or value == "" or value == []:
            value = None
        elif pg_type == "date":
            value = datetime(value.year, value.month, value.day)
        elif pg_type == "timestamptz":
            value = _to_ms(value.astimezone(UTC).replace(tzinfo=None))
        elif pg_type.startswith("numeric"):
            value = float(value)
        elif pg_type.endswith("[]"):
            value = ", ".join(value)
        shown[name] = value
    return shown


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return (
            "{"
            + ",".join('"' + v.replace('"', '\\"') + '"' if set(v) & set(',"\\ {}') else v for v in value)
            + "}"
        )
    if isinstance(value, datetime):
        return re.sub(r"([+-]\d\d):00$", r"\1", value.isoformat(sep=" "))
    return str(value)


# -- every format, every awkward value ------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "compression"), OUTPUTS, ids=OUTPUT_IDS)
def test_every_format_reads_back_as_the_source_rows(stack, edge, source, storage, fmt, compression):
    spec = ExportSpec("edge", *RANGE, owner=EDGE_A, format=fmt, compression=compression)
    body, obj, row_count = _export(spec, edge, source, storage)
    dataset = edge.get("edge")
    expected = _source_rows(stack.env["SOURCE_ADMIN_URL"], dataset, spec)
    assert [r["id"] for r in expected] == [1, 3, 5, 6, 8]
    assert row_count == len(expected)
    assert _read(fmt, compression, body, dataset) == [_as_written(fmt, r, dataset) for r in expected]
    assert obj["ContentType"] == spec.output.content_type
    assert f'filename="edge_2024-01-01_2024-12-31{spec.output.extension}"' in obj["ContentDisposition"]
    if fmt == "csv":  # byte for byte what PostgreSQL's own COPY writes
        assert (gzip.decompress(body) if compression else body) == expected_csv(
            stack.env["SOURCE_ADMIN_URL"], dataset, spec
        )


@pytest.mark.parametrize(("fmt", "compression"), OUTPUTS, ids=OUTPUT_IDS)
def test_an_empty_result_is_a_valid_empty_file(edge, source, storage, fmt, compression):
    spec = ExportSpec(
        "edge",
        date(2000, 1, 1),
        date(2000, 12, 31),
        owner=EDGE_A,
        format=fmt,
        compression=compression,
        columns=("id", "amount", "txn_date"),
    )
    body, _, row_count = _export(spec, edge, source, storage)
    assert row_count == 0
    if compression == "gzip":
        body = gzip.decompress(body)
    if fmt == "csv":
        assert body == b"id,amount,txn_date\n"
    elif fmt == "jsonl":
        assert body == b""
    elif fmt == "json":
        assert body == b"[]" and json.loads(body) == []
    elif fmt == "parquet":
        table = read_parquet(body)
        assert table.num_rows == 0 and table.schema == pa.schema(
            [("id", pa.int64()), ("amount", pa.decimal128(14, 2)), ("txn_date", pa.date32())]
        )
    else:
        (sheet,) = openpyxl.load_workbook(io.BytesIO(body)).worksheets
        assert list(sheet.iter_rows(values_only=True)) == [("id", "amount", "txn_date")]
        assert sheet.freeze_panes == "A2"


def test_parquet_schema_follows_the_column_types(edge, source, storage):
    body, _, _ = _export(ExportSpec("edge", *RANGE, owner=EDGE_A, format="parquet"), edge, source, storage)
    schema = read_parquet(body).schema
    assert schema.field("txn_date").type == pa.date32()
    assert schema.field("posted_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("amount").type == pa.decimal128(14, 2)
    assert schema.field("tag_ids").type == pa.list_(pa.string())
    assert schema.field("id").type == pa.int64()
    assert pq.ParquetFile(io.BytesIO(body)).metadata.row_group(0).column(0).compression == "ZSTD"


# -- user isolation -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "compression"), OUTPUTS, ids=OUTPUT_IDS)
def test_no_row_of_another_user_reaches_the_file(stack, catalog, source, storage, fmt, compression):
    """demo-user-3 and demo-user-4 have interleaved ids and dates; each file holds only its owner's rows."""
    dataset = catalog.get("transactions")
    for owner, other in (("demo-user-3", "demo-user-4"), ("demo-user-4", "demo-user-3")):
        spec = ExportSpec(
            "transactions",
            date(2021, 1, 1),
            date(2021, 12, 31),
            owner=owner,
            format=fmt,
            compression=compression,
            columns=("id", "user_id", "account_id"),
        )
        body, _, row_count = _export(spec, catalog, source, storage)
        rows = _read(fmt, compression, body, dataset)
        owned = _source_rows(stack.env["SOURCE_ADMIN_URL"], dataset, spec)
        assert row_count == len(rows) == len(owned) > 0
        assert {r["user_id"] for r in rows} == {owner}
        assert [int(r["id"]) for r in rows] == [r["id"] for r in owned]
        # asking for the other user's accounts narrows to nothing; it never widens
        theirs = replace(spec, filters=Filters(account_ids=(f"acct-{other[10:]}-1", f"acct-{other[10:]}-2")))
        assert _export(theirs, catalog, source, storage)[2] == 0


@pytest.mark.parametrize("dataset_id", ["daily_spending_by_tag", "monthly_trends"])
@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_aggregate_views_are_scoped_to_the_owner(stack, catalog, source, storage, dataset_id, fmt):
    dataset = catalog.get(dataset_id)
    spec = ExportSpec.for_dataset(
        dataset, owner="demo-user-3", date_from=date(2020, 1, 1), date_to=date(2020, 12, 31), format=fmt
    )
    body, _, row_count = _export(spec, catalog, source, storage)
    rows = _read(fmt, None, body, dataset)
    expected = _source_rows(stack.env["SOURCE_ADMIN_URL"], dataset, spec)
    assert row_count == len(expected) > 0
    assert rows == expected
    assert {r["user_id"] for r in rows} == {"demo-user-3"}
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        posted = (
            "user_id = 'demo-user-3' AND status = 'posted' AND txn_date BETWEEN '2020-01-01' AND '2020-12-31'"
        )
        if dataset_id == "monthly_trends":  # the view agrees with hand-written totals
            cur.execute(f"SELECT sum(amount), count(*) FROM transactions WHERE {posted}")
            assert (sum(r["net"] for r in rows), sum(r["txn_count"] for r in rows)) == cur.fetchone()
        else:  # each debit counts once per tag, untagged ones once
            cur.execute(
                "SELECT sum(greatest(cardinality(tag_ids), 1)),"
                " -sum(amount * greatest(cardinality(tag_ids), 1))"
                f" FROM transactions WHERE {posted} AND amount < 0"
            )
            assert (sum(r["txn_count"] for r in rows), sum(r["spent"] for r in rows)) == cur.fetchone()


def test_aggregate_view_parquet_amounts_are_decimals(catalog, source, storage):
    spec = ExportSpec.for_dataset(
        catalog.get("monthly_trends"),
        owner="demo-user-8",
        date_from=date(2019, 1, 1),
        date_to=date(2019, 12, 31),
        format="parquet",
    )
    schema = read_parquet(_export(spec, catalog, source, storage)[0]).schema
    assert [schema.field(n).type for n in ("month", "income", "net", "txn_count")] == [
        pa.date32(),
        pa.decimal128(16, 2),
        pa.decimal128(16, 2),
        pa.int64(),
    ]


# -- filters and columns --------------------------------------------------------------------------


def _ids_where(admin_url: str, condition: str) -> list[int]:
    """An independent, hand-written query for what a filter must select."""
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT id FROM transactions WHERE user_id = 'demo-user-5' AND txn_date BETWEEN '2020-01-01' "
            f"AND '2022-12-31' AND {condition} ORDER BY txn_date, id"
        )
        return [r[0] for r in cur.fetchall()]


@pytest.mark.parametrize(
    ("filters", "condition"),
    [
        (Filters(account_ids=("acct-5-2", "acct-5-1")), "account_id IN ('acct-5-1', 'acct-5-2')"),
        (Filters(tag_ids=("tag-3", "tag-7")), "(tag_ids @> '{tag-3}' OR tag_ids @> '{tag-7}')"),
        (Filters(status=("pending", "reversed")), "status <> 'posted'"),
        (Filters(amount_min=Decimal(-50), amount_max=Decimal("25.5")), "amount >= -50 AND amount <= 25.5"),
        (
            Filters(account_ids=("acct-5-1",), tag_ids=("tag-1", "tag-6"), amount_max=Decimal(0)),
            "account_id = 'acct-5-1' AND ('tag-1' = ANY(tag_ids) OR 'tag-6' = ANY(tag_ids)) AND amount <= 0",
        ),
    ],
)
def test_filters_select_exactly_the_matching_rows(stack, catalog, source, storage, filters, condition):
    spec = ExportSpec(
        "transactions",
        date(2020, 1, 1),
        date(2022, 12, 31),
        owner="demo-user-5",
        format="jsonl",
        columns=("id",),
        filters=filters,
    )
    body, _, row_count = _export(spec, catalog, source, storage)
    got = [json.loads(line)["id"] for line in body.decode().splitlines()]
    expected = _ids_where(stack.env["SOURCE_ADMIN_URL"], condition)
    assert got == expected and row_count == len(expected) > 0


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json", "xlsx"])
def test_columns_are_the_subset_asked_for_in_that_order(catalog, source, storage, fmt):
    spec = ExportSpec(
        "transactions",
        date(2022, 1, 1),
        date(2022, 3, 31),
        owner="demo-user-6",
        format=fmt,
        columns=("amount", "description", "id"),
    )
    body, _, _ = _export(spec, catalog, source, storage)
    rows = _read(fmt, None, body, catalog.get("transactions"))
    assert rows and all(list(r) == ["amount", "description", "id"] for r in rows)


# -- the Arrow read path: read-only, one snapshot, errors keep their class -------------------------


def test_arrow_reads_are_read_only_repeatable_read(source):
    probe = sql.SQL(
        "SELECT current_setting('transaction_isolation') AS iso, "
        "current_setting('transaction_read_only') AS ro"
    )
    with source.arrow_batches(probe, {}, count=True) as rows:
        assert rows.total == 1
        assert rows.reader.read_all().to_pylist() == [{"iso": "repeatable read", "ro": "on"}]
    locking = sql.SQL("SELECT id FROM transactions FOR UPDATE")
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction), source.arrow_batches(locking, {}):
        pass


def test_arrow_path_missing_table_is_a_permanent_error(catalog, source, storage):
    gone = Catalog({"gone": replace(catalog.get("transactions"), id="gone", table="no_such_table")})
    for fmt in ("parquet", "xlsx"):
        spec = ExportSpec("gone", *RANGE, owner="x", format=fmt)
        with pytest.raises(psycopg2.errors.UndefinedTable) as info:
            run_export(
                spec,
                spec.object_key(str(uuid.uuid4()), "run-1"),
                catalog=gone,
                source=source,
                storage=storage,
            )
        assert 'relation "no_such_table" does not exist' in str(info.value)
        assert is_permanent(info.value)
    assert storage.pending_uploads(prefix="exports/gone/") == []


@pytest.mark.parametrize("fmt", ["parquet", "xlsx", "json"])
def test_failure_mid_stream_aborts_the_upload_in_every_format(stack, catalog, source, storage, fmt):
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE OR REPLACE VIEW exploding_later AS SELECT t.*, "
            "1 / (row_number() OVER (ORDER BY id) - 30000) AS boom FROM transactions t"
        )
        cur.execute("GRANT SELECT ON exploding_later TO export_reader")
    base = catalog.get("transactions")
    exploding = replace(
        base,
        id="exploding_later",
        table="exploding_later",
        owner_column="status",
        columns={**base.columns, "boom": "integer"},
    )
    spec = ExportSpec(
        "exploding_later",
        date(2019, 1, 1),
        date(2030, 1, 1),
        owner="posted",
        format=fmt,
        columns=("id", "boom"),
    )
    reference_id = str(uuid.uuid4())
    with pytest.raises((psycopg2.errors.DivisionByZero, OSError)) as info:
        run_export(
            spec,
            spec.object_key(reference_id, "run-1"),
            catalog=Catalog({"exploding_later": exploding}),
            source=source,
            storage=storage,
        )
    assert "division by zero" in str(info.value)
    assert storage.pending_uploads(prefix="exports/exploding_later/") == []
    assert not storage.exists(spec.object_key(reference_id, "run-1"))


def test_xlsx_spills_into_new_sheets_in_order(stack, catalog, source):
    dataset = catalog.get("transactions")
    spec = ExportSpec(
        "transactions",
        date(2019, 1, 1),
        date(2030, 1, 1),
        owner="demo-user-9",
        format="xlsx",
        columns=("id", "txn_date"),
    )
    select, params = select_query(dataset, spec)
    sink = io.BytesIO()
    written = write_xlsx(source, select, params, sink, rows_per_sheet=400)
    expected = [r["id"] for r in _source_rows(stack.env["SOURCE_ADMIN_URL"], dataset, spec)]
    sheets = openpyxl.load_workbook(io.BytesIO(sink.getvalue())).worksheets
    assert written == len(expected) and len(sheets) == -(-len(expected) // 400) >= 2
    ids = []
    for sheet in sheets:
        header, *data = sheet.iter_rows(values_only=True)
        assert header == ("id", "txn_date") and sheet.freeze_panes == "A2" and len(data) <= 400
        ids += [int(row[0]) for row in data]
    assert ids == expected
