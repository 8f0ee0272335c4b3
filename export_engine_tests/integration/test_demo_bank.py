"""The demo data behaves like a bank's: the test stack's seeded transactions, read as an auditor would."""

from __future__ import annotations

import psycopg2
import pytest

CREDITS = {"salary", "refund", "interest"}
DEBITS = {"rent", "groceries", "dining", "utilities", "cash", "travel", "shopping", "fees"}


def _rows(stack, sql: str) -> list[tuple]:
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_every_account_has_one_currency_and_some_owners_hold_two(stack):
    per_account = _rows(stack, "SELECT account_id, count(DISTINCT currency) FROM transactions GROUP BY 1")
    assert len(per_account) > 100 and {n for _, n in per_account} == {1}
    ((owners,),) = _rows(
        stack,
        "SELECT count(*) FROM (SELECT user_id FROM transactions GROUP BY 1 HAVING count(DISTINCT currency) > 1) o",
    )
    assert owners > 10


def test_each_accounts_balance_after_is_its_running_balance_in_date_and_id_order(stack):
    broken = _rows(
        stack,
        "SELECT id, account_id FROM (SELECT id, account_id, amount, balance_after,"
        " lag(balance_after) OVER w AS before FROM transactions"
        " WINDOW w AS (PARTITION BY account_id ORDER BY txn_date, id)) r"
        " WHERE before IS NOT NULL AND before + amount <> balance_after OR balance_after IS NULL LIMIT 5",
    )
    assert broken == []


def test_credits_and_debits_are_what_their_category_says(stack):
    signs = _rows(stack, "SELECT category, sign(amount)::int, count(*) FROM transactions GROUP BY 1, 2")
    seen = {(category, sign) for category, sign, _ in signs}
    assert {c for c, s in seen if s > 0} == CREDITS | {"transfer"}
    assert {c for c, s in seen if s < 0} == DEBITS | {"transfer"}


@pytest.mark.parametrize(
    ("description", "counterparties", "category"),
    [
        ("Salary", {"ACME Corp"}, "salary"),
        ("Café au lait ☕", {"Coffee, Inc."}, "dining"),
        ('Refund, "partial"', {"Grocer & Sons", "ShopCo"}, "refund"),
        ("Standing order\nmonthly", {"Landlord Ltd"}, "rent"),
        ("ATM withdrawal", {None}, "cash"),
    ],
)
def test_counterparty_and_category_match_the_description(stack, description, counterparties, category):
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT counterparty, category FROM transactions WHERE description = %s", (description,)
        )
        found = cur.fetchall()
    assert found and {c for c, _ in found} == counterparties and {k for _, k in found} == {category}
