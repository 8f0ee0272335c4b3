"""The demo transactions DB: schema, a read-only role for the exporter, and realistic rows made in SQL."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg2

READER_ROLE = "export_reader"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS transactions (
    id            bigint PRIMARY KEY,
    user_id       text        NOT NULL,
    account_id    text        NOT NULL,
    txn_date      date        NOT NULL,
    posted_at     timestamptz,
    amount        numeric(14, 2) NOT NULL,
    currency      char(3)     NOT NULL,
    description   text,
    counterparty  text,
    category      text,
    tag_ids       text[]      NOT NULL DEFAULT '{}',
    status        text        NOT NULL,
    balance_after numeric(14, 2)
);
CREATE INDEX IF NOT EXISTS ix_transactions_owner_date ON transactions (user_id, txn_date, id);
"""

# The two aggregate datasets of the catalog. Each keeps the owner column and a date column, so the
# export's `user_id = ... AND <date> BETWEEN ...` is pushed below the GROUP BY onto the index.
# Sums are cast to numeric(16,2) so typed formats know their precision and scale.
VIEWS_SQL = """
CREATE OR REPLACE VIEW daily_spending_by_tag AS
SELECT t.user_id,
       t.txn_date                        AS day,
       tag.tag_id,
       t.currency,
       count(*)::bigint                  AS txn_count,
       (-sum(t.amount))::numeric(16, 2)  AS spent
FROM transactions AS t
CROSS JOIN LATERAL unnest(CASE WHEN cardinality(t.tag_ids) = 0 THEN ARRAY[NULL]::text[] ELSE t.tag_ids END)
    AS tag(tag_id)
WHERE t.amount < 0 AND t.status = 'posted'
GROUP BY t.user_id, t.txn_date, tag.tag_id, t.currency;

CREATE OR REPLACE VIEW monthly_trends AS
SELECT user_id,
       date_trunc('month', txn_date::timestamp)::date                              AS month,
       currency,
       coalesce(sum(amount) FILTER (WHERE amount > 0), 0)::numeric(16, 2)  AS income,
       coalesce(-sum(amount) FILTER (WHERE amount < 0), 0)::numeric(16, 2) AS spending,
       sum(amount)::numeric(16, 2)                                       AS net,
       count(*)::bigint                                                  AS txn_count
FROM transactions
WHERE status = 'posted'
GROUP BY user_id, date_trunc('month', txn_date::timestamp)::date, currency;

"""
VIEWS = ("daily_spending_by_tag", "monthly_trends")

# The owner's entities, for export packages ("everything I have"). A bank keeps them in tables of their
# own; the demo derives them from the transactions once per seeding (materialized: a package must not
# scan all of an owner's transactions again to list their accounts). opened_on / first_used_on are the
# first transaction's date: they never change once that date is final.
ENTITIES_SQL = """
CREATE MATERIALIZED VIEW IF NOT EXISTS accounts AS
SELECT user_id,
       account_id,
       CASE WHEN account_id LIKE '%-2' THEN 'Savings account'
            WHEN account_id LIKE '%-3' THEN 'Credit card' ELSE 'Current account' END   AS name,
       CASE WHEN account_id LIKE '%-2' THEN 'savings'
            WHEN account_id LIKE '%-3' THEN 'credit' ELSE 'current' END                AS type,
       (mode() WITHIN GROUP (ORDER BY currency))::char(3)                               AS currency,
       min(txn_date)                                                                    AS opened_on
FROM transactions
GROUP BY user_id, account_id;
CREATE UNIQUE INDEX IF NOT EXISTS ix_accounts_owner_account ON accounts (user_id, account_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS tags AS
SELECT t.user_id,
       tag.tag_id,
       CASE WHEN tag.tag_id ~ '^tag-[0-9]{1,6}$'
            THEN (ARRAY['Essentials', 'Household', 'Commute', 'Holidays', 'Kids', 'Health', 'Gifts',
                        'Subscriptions', 'Work expenses', 'Pets', 'Education', 'Charity', 'Home'])
                 [1 + substr(tag.tag_id, 5)::int % 13]
            ELSE tag.tag_id END                                                          AS name,
       min(t.txn_date)                                                                  AS first_used_on
FROM transactions AS t
CROSS JOIN LATERAL unnest(t.tag_ids) AS tag(tag_id)
GROUP BY t.user_id, tag.tag_id;
CREATE UNIQUE INDEX IF NOT EXISTS ix_tags_owner_tag ON tags (user_id, tag_id);
"""
ENTITIES = ("accounts", "tags")


# One INSERT ... SELECT over generate_series: ~1M rows in seconds, no Python in the loop.
# `%%` is SQL's modulo escaped for psycopg2's parameter syntax.
SEED_SQL = """
INSERT INTO transactions
SELECT
    s.id,
    'demo-user-' || u.n,
    'acct-' || u.n || '-' || (1 + s.id %% 3),
    d.txn_date,
    CASE WHEN s.id %% 50 = 0 THEN NULL
         ELSE d.txn_date + make_interval(secs => (s.id * 7919) %% 86400) END,
    round(((CASE WHEN s.id %% 9 = 0 THEN 1 ELSE -1 END)
           * (1 + (s.id * 2654435761) %% 250000) / 100.0)::numeric, 2),
    (ARRAY['USD','EUR','GBP'])[1 + (s.id %% 17 = 0)::int + (s.id %% 51 = 0)::int],
    (ARRAY['Card payment', 'Direct debit', 'Transfer', 'Salary', 'ATM withdrawal',
           'Refund, "partial"', E'Standing order\nmonthly', 'Café au lait ☕'])[1 + s.id %% 8],
    (ARRAY['ACME Corp', 'Grocer & Sons', 'City Utilities', 'Landlord Ltd', 'Coffee, Inc.', NULL])
        [1 + s.id %% 6],
    (ARRAY['groceries', 'rent', 'salary', 'utilities', 'travel', 'dining', 'cash'])[1 + s.id %% 7],
    CASE WHEN s.id %% 5 = 0 THEN ARRAY['tag-' || s.id %% 11, 'tag-' || s.id %% 13]
         WHEN s.id %% 3 = 0 THEN ARRAY['tag-' || s.id %% 11] ELSE '{}' END,
    CASE WHEN s.id %% 97 = 0 THEN 'pending' WHEN s.id %% 211 = 0 THEN 'reversed' ELSE 'posted' END,
    round((((s.id * 40503) %% 2000000) / 100.0 - 2000)::numeric, 2)
FROM generate_series(%(first_id)s::bigint, %(last_id)s::bigint) AS s(id)
CROSS JOIN LATERAL (
    -- Two independent 31-bit hashes of the id: one places the row in time, one picks its band.
    SELECT ('x' || substr(md5('date:' || s.id), 1, 8))::bit(32)::bigint & 2147483647 AS h_date,
           ('x' || substr(md5('band:' || s.id), 1, 8))::bit(32)::bigint & 2147483647 AS h_band
) AS h
CROSS JOIN LATERAL (
    SELECT CASE WHEN h.h_band %% 100 < %(recent_percent)s
                THEN %(today)s::date - (h.h_date %% %(recent_days)s)::int
                ELSE %(start)s::date + (h.h_date %% %(days)s)::int END AS txn_date
) AS d
CROSS JOIN LATERAL (SELECT 1 + ((s.id * 48271) %% 2147483647) %% %(users)s AS n) AS u;
ANALYZE transactions;
"""


def create_schema(admin_url: str, *, reader_password: str = READER_ROLE) -> None:
    """Create the table, the aggregate views, and a login role that can only read them."""
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(SCHEMA_SQL)
        cur.execute(VIEWS_SQL)
        cur.execute(ENTITIES_SQL)
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER_ROLE,))
        if cur.fetchone() is None:
            cur.execute(f"CREATE ROLE {READER_ROLE} LOGIN PASSWORD %s", (reader_password,))
        cur.execute(f"ALTER ROLE {READER_ROLE} SET default_transaction_read_only = on")
        cur.execute(f"GRANT USAGE ON SCHEMA public TO {READER_ROLE}")
        cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER_ROLE}")
        cur.execute(f"GRANT SELECT ON {', '.join(VIEWS + ENTITIES)} TO {READER_ROLE}")
        cur.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READER_ROLE}")
    conn.close()


def refresh_entities(cur: Any) -> None:
    """Re-derive the accounts and tags from the transactions (after seeding more of them)."""
    for name in ENTITIES:
        cur.execute(f"REFRESH MATERIALIZED VIEW {name}")


def row_count(url: str) -> int:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM transactions")
        return cur.fetchone()[0]


# The demo's fixed span: every row outside the "recent" band is dated inside it, whatever day it is.
SPAN_START = date(2019, 1, 1)
SPAN_END = date(2025, 12, 31)
RECENT_DAYS = 90  # the band that follows `today`, so a demo has rows in "the last month"
RECENT_PERCENT = 5


def seed_transactions(
    admin_url: str,
    rows: int,
    *,
    users: int = 100,
    start: date = SPAN_START,
    end: date = SPAN_END,
    today: date | None = None,
) -> int:
    """Append `rows` rows owned by demo-user-1..N; returns the total row count.

    Every row is a fixed function of its id and these parameters, never of the calendar: 95 % of the
    rows are dated in start..end, and the other 5 % in the RECENT_DAYS days up to `today` (default:
    `end`). Which rows are "recent" does not depend on `today`, so a range that ends before
    `today - RECENT_DAYS` holds the same rows whatever `today` a caller passes.
    """
    today = today or end
    days = (end - start).days + 1
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM transactions")
        first_id = cur.fetchone()[0] + 1
        cur.execute(
            SEED_SQL,
            {
                "users": users,
                "first_id": first_id,
                "last_id": first_id + rows - 1,
                "start": start,
                "days": days,
                "today": today,
                "recent_days": RECENT_DAYS,
                "recent_percent": RECENT_PERCENT,
            },
        )
        refresh_entities(cur)
    conn.close()
    return row_count(admin_url)
