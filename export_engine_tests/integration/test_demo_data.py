"""The demo data is a fixed function of its parameters: a past range holds the same rows on any day."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg2
import pytest

from devstack import seed

ROWS = 20_000
PAST_RANGE = (date(2019, 1, 1), date(2025, 6, 30))


def _seeded(stack, name: str, today: date) -> str:
    url = stack.postgres.ensure_database(name)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "DROP MATERIALIZED VIEW IF EXISTS accounts, tags; DROP TABLE IF EXISTS transactions CASCADE"
        )
    seed.create_schema(url)
    seed.seed_transactions(url, ROWS, users=10, today=today)
    return url


def _rows(url: str, date_from: date, date_to: date) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT * FROM transactions WHERE txn_date BETWEEN %s AND %s ORDER BY id", (date_from, date_to)
        )
        return cur.fetchall()


@pytest.fixture(scope="module")
def two_days(stack) -> tuple[str, str]:
    return (
        _seeded(stack, "demo_seed_today", date(2026, 12, 7)),
        _seeded(stack, "demo_seed_next_year", date(2027, 12, 7)),
    )


def test_a_past_range_holds_the_same_rows_whatever_today_the_seed_was_given(two_days):
    first, second = two_days
    rows = _rows(first, *PAST_RANGE)
    assert len(rows) > ROWS * 0.8  # the fixed span holds ~95 % of the rows
    assert rows == _rows(second, *PAST_RANGE)


@pytest.mark.parametrize("index, today", [(0, date(2026, 12, 7)), (1, date(2027, 12, 7))])
def test_the_recent_band_follows_the_today_it_was_given(two_days, index, today):
    recent = _rows(two_days[index], today - timedelta(days=seed.RECENT_DAYS - 1), today)
    assert ROWS * 0.03 < len(recent) < ROWS * 0.07
    assert _rows(two_days[index], today + timedelta(days=1), date(9999, 12, 31)) == []


def test_each_owner_has_rows_on_many_days_of_a_year(two_days):
    with psycopg2.connect(two_days[0]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, count(*), count(DISTINCT txn_date) FROM transactions"
            " WHERE txn_date BETWEEN '2024-01-01' AND '2024-12-31' GROUP BY user_id"
        )
        per_owner = cur.fetchall()
    assert len(per_owner) == 10
    for owner, rows, days in per_owner:
        # ~270 rows a year each: spread, not stacked on a handful of dates as the old seed did
        assert days > rows * 0.5, (owner, rows, days)
