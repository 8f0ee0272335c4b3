"""Progress while an export streams, against a real PostgreSQL and a real S3 server."""

from __future__ import annotations

import gzip
import io
import uuid
from datetime import date

import psycopg2
import pyarrow.parquet as pq
import pytest

from export_engine.core.catalog import Catalog, Dataset, load_catalog
from export_engine.core.export_spec import ExportSpec
from export_engine.pipeline.export import run_export
from export_engine.runs.resources import S3StorageResource, SourceDatabaseResource
from export_engine_tests.helpers import expected_csv

# Rows stream at a steady pace for a few seconds (a 50 ms pause every 2,000 ids), after the sort:
# long enough for several once-a-second progress reports, whatever the machine's speed.
PACED_SQL = """
CREATE OR REPLACE VIEW paced_transactions AS
  SELECT * FROM (SELECT * FROM transactions ORDER BY txn_date, id OFFSET 0) AS sorted
  WHERE id % 2000 <> 0 OR pg_sleep(0.05)::text = '';
GRANT SELECT ON paced_transactions TO export_reader;
"""


@pytest.mark.parametrize(
    ("fmt", "compression"),
    [("csv", None), ("csv", "gzip"), ("parquet", None)],
    ids=["csv", "csv.gz", "parquet"],
)
def test_progress_is_reported_while_streaming_and_the_final_count_is_exact(
    stack, settings, monkeypatch, fmt, compression
):
    """CSV counts newlines outside quotes; gzip counts them before compressing; Parquet counts batches."""
    import export_engine.source.database

    monkeypatch.setattr(
        export_engine.source.database, "_ARROW_BATCH_BYTES", 64 * 1024
    )  # many Parquet batches
    admin_url = stack.env["SOURCE_ADMIN_URL"]
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute(PACED_SQL)
    base = load_catalog(settings.catalog_path).get("transactions")
    paced = Dataset(
        **{**base.__dict__, "id": "paced", "table": "paced_transactions", "owner_column": "currency"}
    )
    spec = ExportSpec(
        "paced", date(2019, 1, 1), date(2030, 1, 1), owner="USD", format=fmt, compression=compression
    )
    storage = S3StorageResource.from_settings(settings)
    progress: list[int] = []

    result = run_export(
        spec,
        spec.object_key(str(uuid.uuid4()), "run-1"),
        catalog=Catalog({"paced": paced}),
        source=SourceDatabaseResource.from_settings(settings),
        storage=storage,
        on_progress=progress.append,
    )

    body = storage.client.get_object(Bucket=storage.bucket, Key=result.s3_key)["Body"].read()
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM transactions WHERE currency = 'USD'")
        (rows,) = cur.fetchone()
    if fmt == "parquet":
        assert pq.ParquetFile(io.BytesIO(body)).metadata.num_rows == result.row_count == rows
    else:
        expected = expected_csv(admin_url, paced, spec)
        assert (gzip.decompress(body) if compression else body) == expected
        quoted_newlines = expected.count(b"Standing order\nmonthly")
        assert quoted_newlines > 0
        assert result.row_count == rows == expected.count(b"\n") - 1 - quoted_newlines
    assert len(progress) >= 2, "a stream of several seconds reports about once a second"
    assert progress == sorted(progress)
    assert 0 < progress[-1] <= rows * 1.05  # estimated from sampled chunks; newlines in quotes are not rows
