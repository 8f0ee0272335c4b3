"""The benchmark's data: one owner's transactions, laid out as a real ledger is, and the date range to export.

Every export filters by one owner, so the bench gives one owner (`demo-user-1`) all the rows: the
query is the catalog's real `transactions` query, on the real index, with no bench-only catalog
entry. The generator scatters dates over ids (`txn_date` is a hash of `id`), which a ledger that
appends each day's transactions never does, and an index scan over scattered rows reads the heap
at random (the same 5M-row query took 65 s instead of 12 s). So after seeding, the table is
`CLUSTER`ed on the owner/date index once, giving it the physical order of an append-only ledger.

Seeding is incremental and the data directory is reused, so only the first run pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg2

from devstack import seed

OWNER = "demo-user-1"
TABLE = "transactions"
FIRST_DAY = date(2019, 1, 1)  # the generator's first date


@dataclass(frozen=True)
class DateRange:
    date_from: date
    date_to: date
    rows: int


def ensure_rows(admin_url: str, rows: int, *, log=print) -> int:
    """At least `rows` rows for OWNER, clustered by (owner, date, id); returns how many there are."""
    have = _count(admin_url, "SELECT count(*) FROM transactions WHERE user_id = %s", (OWNER,))
    if have >= rows:
        return have
    log(f"seeding {rows - have:,} rows for {OWNER} (once; the data directory is reused) ...")
    seed.seed_transactions(admin_url, rows - have, users=1)
    log("clustering the table on (user_id, txn_date, id) and vacuuming ...")
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CLUSTER transactions USING ix_transactions_owner_date")
        cur.execute("VACUUM ANALYZE transactions")
    conn.close()
    return _count(admin_url, "SELECT count(*) FROM transactions WHERE user_id = %s", (OWNER,))


def range_with_rows(admin_url: str, rows: int) -> DateRange:
    """From FIRST_DAY to the first day on which OWNER's row count reaches `rows` (whole days: a few more)."""
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT txn_date FROM transactions WHERE user_id = %s ORDER BY txn_date, id OFFSET %s LIMIT 1",
            (OWNER, max(rows - 1, 0)),
        )
        found = cur.fetchone()
        if found is None:
            cur.execute("SELECT max(txn_date) FROM transactions WHERE user_id = %s", (OWNER,))
            found = cur.fetchone()
        date_to = found[0]
        cur.execute(
            "SELECT count(*) FROM transactions WHERE user_id = %s AND txn_date BETWEEN %s AND %s",
            (OWNER, FIRST_DAY, date_to),
        )
        return DateRange(FIRST_DAY, date_to, cur.fetchone()[0])


def explain(admin_url: str, statement: str) -> str:
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute("EXPLAIN " + statement)
        return "\n".join(row[0] for row in cur.fetchall())


def _count(url: str, query: str, params: tuple) -> int:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone()[0]
