"""The synchronous stream's Arrow formats (Parquet, XLSX, PDF) read the snapshot that was counted.

Review 2026-12-07 N6: `SnapshotSource.arrow_batches` opened a new ADBC session with a snapshot of its
own, so a row committed between the count (the 10,000-row limit, `X-Export-Rows`) and the write went
into the file. Now the ADBC session imports the counted transaction's snapshot.
"""

from __future__ import annotations

import random
import uuid
from datetime import date

import psycopg2
import pytest

from export_engine.core.export_spec import ExportSpec
from export_engine.core.query import select_query
from export_engine.source.database import SourceDatabase
from export_engine.source.snapshot import SnapshotSource

pytestmark = pytest.mark.integration


def _insert(admin_url: str, owner: str, day: date) -> int:
    row_id = random.randrange(9 * 10**15, 10**16)
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO transactions (id, user_id, account_id, txn_date, amount, currency, status) "
            "VALUES (%s, %s, 'acct-n6', %s, 1.00, 'USD', 'posted')",
            (row_id, owner, day),
        )
    return row_id


@pytest.mark.parametrize("count", [False, True])
def test_arrow_rows_of_a_snapshot_are_the_rows_it_counted(settings, stack, catalog, count):
    admin = stack.env["SOURCE_ADMIN_URL"]
    owner = f"n6-{uuid.uuid4()}"
    spec = ExportSpec("transactions", date(2024, 1, 1), date(2024, 1, 31), owner=owner, format="parquet")
    select, params = select_query(catalog.get("transactions"), spec)
    ids = [_insert(admin, owner, date(2024, 1, 10))]
    try:
        with SnapshotSource(SourceDatabase.from_settings(settings)) as snapshot:
            assert snapshot.count(select, params, limit=100) == 1
            ids.append(_insert(admin, owner, date(2024, 1, 20)))  # committed after the count
            with snapshot.arrow_batches(select, params, count=count) as rows:
                table = rows.reader.read_all()
        assert table.num_rows == 1
        assert table.column("id").to_pylist() == ids[:1]
        assert rows.total == (1 if count else None)
    finally:
        with psycopg2.connect(admin) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM transactions WHERE id = ANY(%s)", (ids,))
