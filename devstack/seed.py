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
#
# Owner N has three accounts: acct-N-1 current, acct-N-2 savings, acct-N-3 credit card (a row's account
# is `1 + id % 3`). An account has one currency: the owner's home currency (USD; EUR when N % 10 = 3,
# GBP when N % 10 = 7), and every third owner's card is in a second one. What a row is (a salary, the
# rent, a purchase, ...) is one of its account type's `_KINDS`, picked by a hash of its id; its
# description, counterparty, category and sign follow from the kind. `balance_after` is the account's
# running balance in (txn_date, id) order from an opening balance of its own (a window function).
# The hostile values the tests rely on are where a bank has them: quotes and a comma in
# 'Refund, "partial"', a newline in the standing order, an accent and an emoji in 'Café au lait ☕',
# a comma and an ampersand in counterparties. Pending and reversed rows count in the balance too.
#
# (account type, order, share in ‰ of the type's rows, description, counterparty, category, sign,
#  smallest and largest amount in cents)
_KINDS = """
    (1, 1, 45, 'Salary', 'ACME Corp', 'salary', 1, 180000, 340000),
    (1, 2, 40, 'Transfer from savings', 'Own savings account', 'transfer', 1, 10000, 80000),
    (1, 3, 30, 'Refund, "partial"', 'Grocer & Sons', 'refund', 1, 500, 8000),
    (1, 4, 30, E'Standing order\nmonthly', 'Landlord Ltd', 'rent', -1, 90000, 160000),
    (1, 5, 10, 'Rent payment', 'Landlord Ltd', 'rent', -1, 90000, 160000),
    (1, 6, 300, 'Card payment', 'Grocer & Sons', 'groceries', -1, 500, 15000),
    (1, 7, 150, 'Café au lait ☕', 'Coffee, Inc.', 'dining', -1, 300, 700),
    (1, 8, 100, 'Direct debit', 'City Utilities', 'utilities', -1, 4000, 20000),
    (1, 9, 95, 'ATM withdrawal', NULL, 'cash', -1, 2000, 30000),
    (1, 10, 50, 'Train ticket', 'National Rail', 'travel', -1, 800, 12000),
    (1, 11, 50, 'Transfer to savings', 'Own savings account', 'transfer', -1, 5000, 50000),
    (1, 12, 100, 'Card payment', 'Corner Bistro', 'dining', -1, 1200, 6000),
    (2, 1, 200, 'Interest', 'Demo Bank', 'interest', 1, 10, 2500),
    (2, 2, 450, 'Transfer from current account', 'Own current account', 'transfer', 1, 5000, 50000),
    (2, 3, 350, 'Transfer to current account', 'Own current account', 'transfer', -1, 10000, 60000),
    (3, 1, 300, 'Card payment', 'Grocer & Sons', 'groceries', -1, 500, 15000),
    (3, 2, 200, 'Café au lait ☕', 'Coffee, Inc.', 'dining', -1, 300, 700),
    (3, 3, 210, 'Online purchase', 'ShopCo', 'shopping', -1, 1000, 20000),
    (3, 4, 140, 'Hotel', 'Seaside Hotel', 'travel', -1, 8000, 40000),
    (3, 5, 30, 'Refund, "partial"', 'ShopCo', 'refund', 1, 500, 8000),
    (3, 6, 100, 'Card repayment, thank you', 'Own current account', 'transfer', 1, 30000, 120000),
    (3, 7, 20, 'Late payment fee', 'Demo Bank', 'fees', -1, 1200, 2500)
"""
# An account's opening balance, from its owner's number and its type: a card starts at 0, savings
# at 10,000-50,000, a current account at 2,000-12,000.
_OPENING = """(CASE {type} WHEN 3 THEN 0
      WHEN 2 THEN 10000 + (({n} * 48271 + 2 * 16807) %% 2147483647 %% 4000000) / 100.0
      ELSE 2000 + (({n} * 48271 + {type} * 16807) %% 2147483647 %% 1000000) / 100.0 END)"""
_BALANCE = """({opening}
      + sum(amount) OVER (PARTITION BY {partition} ORDER BY txn_date, id))::numeric(14, 2)"""

SEED_SQL = f"""
WITH kinds(type, ord, share, description, counterparty, category, sign, low, high) AS (VALUES {_KINDS}),
slots AS (  -- each kind on `share` of its account type's 1,000 slots
    SELECT k.*, p.slot
    FROM (SELECT *, sum(share) OVER (PARTITION BY type ORDER BY ord) AS upto FROM kinds) AS k
    CROSS JOIN LATERAL generate_series(k.upto - k.share, k.upto - 1) AS p(slot)
),
made AS (
    SELECT
        s.id,
        u.n,
        a.type,
        d.txn_date,
        CASE WHEN s.id %% 50 = 0 THEN NULL
             ELSE d.txn_date + make_interval(secs => (s.id * 7919) %% 86400) END AS posted_at,
        round(k.sign * (k.low + (h.h_date / 1024) %% (k.high - k.low + 1)) / 100.0, 2) AS amount,
        CASE WHEN a.type = 3 AND u.n %% 3 = 0 THEN (CASE WHEN c.home = 'USD' THEN 'EUR' ELSE 'USD' END)
             ELSE c.home END AS currency,
        k.description,
        k.counterparty,
        k.category,
        CASE WHEN s.id %% 5 = 0 THEN ARRAY['tag-' || s.id %% 11, 'tag-' || s.id %% 13]
             WHEN s.id %% 3 = 0 THEN ARRAY['tag-' || s.id %% 11] ELSE '{{}}' END AS tag_ids,
        CASE WHEN s.id %% 97 = 0 THEN 'pending' WHEN s.id %% 211 = 0 THEN 'reversed'
             ELSE 'posted' END AS status
    FROM generate_series(%(first_id)s::bigint, %(last_id)s::bigint) AS s(id)
    CROSS JOIN LATERAL (
        -- Two independent 31-bit hashes of the id: one places the row in time (and sizes its amount),
        -- one picks its band (and its kind).
        SELECT ('x' || substr(md5('date:' || s.id), 1, 8))::bit(32)::bigint & 2147483647 AS h_date,
               ('x' || substr(md5('band:' || s.id), 1, 8))::bit(32)::bigint & 2147483647 AS h_band
        OFFSET 0  -- once per row: a flattened subquery would hash again wherever a hash is used
    ) AS h
    CROSS JOIN LATERAL (
        SELECT CASE WHEN h.h_band %% 100 < %(recent_percent)s
                    THEN %(today)s::date - (h.h_date %% %(recent_days)s)::int
                    ELSE %(start)s::date + (h.h_date %% %(days)s)::int END AS txn_date
    ) AS d
    CROSS JOIN LATERAL (SELECT 1 + ((s.id * 48271) %% 2147483647) %% %(users)s AS n) AS u
    CROSS JOIN LATERAL (SELECT 1 + s.id %% 3 AS type) AS a
    CROSS JOIN LATERAL (
        SELECT CASE u.n %% 10 WHEN 3 THEN 'EUR' WHEN 7 THEN 'GBP' ELSE 'USD' END AS home
    ) AS c
    JOIN slots AS k ON k.type = a.type AND k.slot = (h.h_band / 100) %% 1000
)
INSERT INTO transactions (id, user_id, account_id, txn_date, posted_at, amount, currency, description,
                          counterparty, category, tag_ids, status, balance_after)
SELECT id, 'demo-user-' || n, 'acct-' || n || '-' || type, txn_date, posted_at, amount, currency,
       description, counterparty, category, tag_ids, status,
       {_BALANCE.format(opening=_OPENING.format(n="n", type="type"), partition="n, type")}
FROM made;
"""
# After appending to a seeded table: an account's rows may now interleave, so every balance is recounted.
RECOUNT_SQL = f"""
UPDATE transactions AS t SET balance_after = r.balance
FROM (
    SELECT id, {_BALANCE.format(opening=_OPENING.format(n="n", type="type"), partition="account_id")} AS balance
    FROM (SELECT *, split_part(account_id, '-', 2)::bigint AS n, split_part(account_id, '-', 3)::int AS type
          FROM transactions) AS numbered
) AS r
WHERE t.id = r.id AND t.balance_after IS DISTINCT FROM r.balance;
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
    `today - RECENT_DAYS` holds the same rows whatever `today` a caller passes. `balance_after` is
    each account's running balance over all of its rows: appending to a seeded table recounts it.
    """
    today = today or end
    days = (end - start).days + 1
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET work_mem = '256MB'")  # the running balances sort 1M rows in memory, not on disk
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
        if first_id > 1:
            cur.execute(RECOUNT_SQL, {})  # `%%` unescaped, as in SEED_SQL
        cur.execute("ANALYZE transactions")
        refresh_entities(cur)
    conn.close()
    return row_count(admin_url)
