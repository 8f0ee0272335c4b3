"""The export path against a real PostgreSQL and a real S3 server over HTTP."""

from __future__ import annotations

import csv
import io
import os
import socket
import uuid
from datetime import date

import psycopg2
import psycopg2.errors
import pytest
from psycopg2 import sql

from export_engine.core.catalog import Catalog, Dataset
from export_engine.core.export_spec import ExportSpec
from export_engine.pipeline.export import run_export
from export_engine.runs.op_lifecycle import is_permanent
from export_engine.runs.resources import S3StorageResource
from export_engine_tests.helpers import expected_csv


def _object_bytes(storage: S3StorageResource, key: str) -> bytes:
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


@pytest.mark.parametrize(
    ("owner", "date_from", "date_to"),
    [
        ("demo-user-7", date(2019, 1, 1), date(2030, 1, 1)),  # all of one user's rows
        ("demo-user-42", date(2022, 3, 1), date(2022, 3, 31)),  # a month
        ("nobody", date(2020, 1, 1), date(2020, 12, 31)),  # no rows: a header-only file, not an error
    ],
)
def test_object_equals_copy_of_the_same_query(stack, catalog, source, storage, owner, date_from, date_to):
    spec = ExportSpec("transactions", date_from, date_to, owner=owner)
    progress: list[int] = []
    result = run_export(
        spec,
        spec.object_key(str(uuid.uuid4()), "run-1"),
        catalog=catalog,
        source=source,
        storage=storage,
        on_progress=progress.append,
    )
    expected = expected_csv(stack.env["SOURCE_ADMIN_URL"], catalog.get("transactions"), spec)
    body = _object_bytes(storage, result.s3_key)
    assert body == expected
    assert result.file_size_bytes == len(expected)
    data_rows = expected.count(b"\n") - 1 - expected.count(b"Standing order\nmonthly")
    assert result.row_count == data_rows  # exact, although some fields hold quoted newlines
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0][:2] == ["id", "user_id"]
    assert {row[1] for row in rows[1:]} <= {owner}  # only the owner's rows


def test_large_export_spans_several_parts_and_leaves_no_upload(stack, catalog, source, storage):
    """5 MiB parts (the test settings) and the whole table's worth of one big range: several parts."""
    wide = Dataset(**{**catalog.get("transactions").__dict__, "owner_column": "currency"})
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2030, 1, 1), owner="USD")
    result = run_export(
        spec,
        spec.object_key(str(uuid.uuid4()), "run-1"),
        catalog=Catalog({"transactions": wide}),
        source=source,
        storage=storage,
    )
    assert result.file_size_bytes > 5 * 1024 * 1024
    head = storage.client.head_object(Bucket=storage.bucket, Key=result.s3_key)
    assert head["ContentLength"] == result.file_size_bytes
    assert "-" in head["ETag"]  # a multipart ETag: <md5>-<parts>
    assert head["ContentType"].startswith("text/csv")
    assert _object_bytes(storage, result.s3_key) == expected_csv(stack.env["SOURCE_ADMIN_URL"], wide, spec)
    assert storage.pending_uploads(prefix=result.s3_key) == []


def test_failure_mid_stream_aborts_the_upload(exploding, source, storage):
    """A view that raises division_by_zero deep into the stream, after parts were already uploaded."""
    spec = ExportSpec("exploding", date(2019, 1, 1), date(2030, 1, 1), owner="posted")
    reference_id = str(uuid.uuid4())
    with pytest.raises(psycopg2.errors.DivisionByZero) as info:
        run_export(
            spec,
            spec.object_key(reference_id, "run-1"),
            catalog=Catalog({"exploding": exploding}),
            source=source,
            storage=storage,
        )
    assert not is_permanent(info.value)
    assert storage.pending_uploads(prefix="exports/exploding/") == []
    assert not storage.exists(spec.object_key(reference_id, "run-1"))


def test_source_connection_is_read_only(source):
    with (
        source.connect() as conn,
        conn.cursor() as cur,
        pytest.raises(psycopg2.errors.ReadOnlySqlTransaction),
    ):
        cur.execute("DELETE FROM transactions WHERE id = 1")


def test_source_sessions_notice_a_silent_peer_within_a_minute(source):
    """A source that vanishes without a FIN or RST (a failover, a NAT that drops the connection's
    state) must fail the COPY soon, so the run retries, instead of hanging it until the max runtime.
    libpq turns TCP keepalives on by default, but with Linux's first probe after two hours."""
    with source.connect() as conn, socket.socket(fileno=os.dup(conn.fileno())) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
        probes = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
    assert idle + interval * probes <= 60


_PLANNER_WANTS_PARALLEL = (
    "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;"
    " SET enable_indexscan = off; SET enable_bitmapscan = off"
)
_EXPORT_QUERY = "EXPLAIN SELECT * FROM transactions WHERE txn_date >= '2019-01-01' ORDER BY txn_date, id"


def test_source_sessions_never_plan_parallel_scans(stack, source):
    """The export streams in index order on its own backend; a parallel plan would scan and sort first."""
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as admin, admin.cursor() as cur:
        cur.execute(_PLANNER_WANTS_PARALLEL)
        cur.execute(_EXPORT_QUERY)
        assert "Gather" in "\n".join(row[0] for row in cur.fetchall())  # the probe does ask for one
    with source.connect() as conn, conn.cursor() as cur:
        cur.execute(_PLANNER_WANTS_PARALLEL)
        cur.execute(_EXPORT_QUERY)
        assert "Gather" not in "\n".join(row[0] for row in cur.fetchall())
    probe = sql.SQL("SELECT current_setting('max_parallel_workers_per_gather') AS workers")
    with source.arrow_batches(probe, {}) as rows:  # the ADBC sessions of Parquet and XLSX too
        assert rows.reader.read_all().to_pylist() == [{"workers": "0"}]


def test_reader_role_cannot_write_even_when_it_asks_for_read_write(source):
    with source.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
        conn.commit()
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("UPDATE transactions SET amount = 0 WHERE id = 1")


def test_missing_table_is_a_permanent_error(catalog, source, storage):
    gone = Dataset(**{**catalog.get("transactions").__dict__, "table": "vanished_table"})
    spec = ExportSpec("vanished", date(2020, 1, 1), date(2020, 1, 2), owner="x")
    with pytest.raises(psycopg2.errors.UndefinedTable) as info:
        run_export(
            spec,
            spec.object_key(str(uuid.uuid4()), "run-1"),
            catalog=Catalog({"vanished": gone}),
            source=source,
            storage=storage,
        )
    assert is_permanent(info.value)
    assert storage.pending_uploads(prefix="exports/vanished/") == []
