"""Real faults, injected in the real source database.

Test-only datasets are added to a copy of the shipped catalog (the stack runs with CATALOG_PATH
pointing at it):
- `flaky`:    `transactions` through a view that raises serialization_failure (SQLSTATE 40001,
              a transient error) while `fault_injection.fail_until` for 'flaky' is in the future;
- `slow`:     `transactions` through a view that streams a row every ~2 ms while 'slow' is armed;
- `vanished`: a table that does not exist (a permanent error).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import yaml

FAULTS_SQL = """
CREATE TABLE IF NOT EXISTS fault_injection (name text PRIMARY KEY, fail_until timestamptz NOT NULL);
CREATE OR REPLACE FUNCTION fault_armed(fault text) RETURNS boolean LANGUAGE sql VOLATILE AS
  $$ SELECT EXISTS (SELECT 1 FROM fault_injection WHERE name = fault AND fail_until > clock_timestamp()) $$;
CREATE OR REPLACE FUNCTION raise_if_armed(fault text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF fault_armed(fault) THEN
    RAISE EXCEPTION 'injected transient failure (%)', fault USING ERRCODE = '40001';
  END IF;
  RETURN true;
END $$;
CREATE OR REPLACE VIEW flaky_transactions AS SELECT * FROM transactions WHERE raise_if_armed('flaky');
-- Sorted below the sleep, so rows stream slowly instead of all sleeping before a Sort node emits anything
-- (OFFSET 0 keeps every qual out of the subquery, whose order satisfies the export's ORDER BY).
CREATE OR REPLACE VIEW slow_transactions AS
  SELECT * FROM (SELECT * FROM transactions ORDER BY txn_date, id OFFSET 0) AS sorted
  WHERE NOT fault_armed('slow') OR pg_sleep(0.002)::text = '';
GRANT SELECT ON fault_injection, flaky_transactions, slow_transactions TO export_reader;
"""


def install(admin_url: str) -> None:
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute(FAULTS_SQL)


def arm(admin_url: str, name: str, seconds: float) -> None:
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO fault_injection VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET fail_until = EXCLUDED.fail_until",
            (name, until),
        )


def disarm(admin_url: str, name: str) -> None:
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM fault_injection WHERE name = %s", (name,))


def write_test_catalog(shipped: Path, target: Path) -> Path:
    """The shipped catalog plus the fault datasets, each a copy of `transactions` on another table."""
    catalog = yaml.safe_load(shipped.read_text())
    base = catalog["datasets"]["transactions"]
    for dataset_id, table in (
        ("flaky", "flaky_transactions"),
        ("slow", "slow_transactions"),
        ("vanished", "vanished_transactions"),
    ):
        catalog["datasets"][dataset_id] = {**base, "table": table, "name": f"test: {dataset_id}"}
    catalog["datasets"]["slow"]["owner_column"] = "currency"  # token sub 'USD': most rows, a long export
    catalog["datasets"]["slow"]["max_span_days"] = 5000  # the long exports span 2019..2030
    target.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return target
