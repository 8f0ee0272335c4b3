"""The web page's look-ups in the real source DB: the owner's own filter values, and row estimates."""

from __future__ import annotations

from datetime import date

import psycopg2
import pytest

from api.source_lookups import EXACT_COUNT_MAX_ESTIMATE, SourceLookups
from export_engine.core.export_spec import ExportSpec, Filters
from export_engine_tests import faults

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lookups(settings) -> SourceLookups:
    return SourceLookups.from_dsn(settings.source_database_url)  # the read-only role, like the gateway


def admin_rows(stack, statement: str, *params: object) -> list:
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return [row[0] for row in cur.fetchall()]


def test_account_values_are_the_owners_own(stack, catalog, lookups):
    values, truncated = lookups.filter_values(catalog.get("transactions"), "account_ids", owner="demo-user-7")
    assert values == admin_rows(
        stack, "SELECT DISTINCT account_id FROM transactions WHERE user_id = %s ORDER BY 1", "demo-user-7"
    )
    assert values and not truncated
    others = admin_rows(
        stack, "SELECT DISTINCT account_id FROM transactions WHERE user_id <> %s", "demo-user-7"
    )
    assert not set(values) & set(others)


def test_tag_values_from_an_array_column_and_from_a_view(stack, catalog, lookups):
    expected = admin_rows(
        stack,
        "SELECT DISTINCT unnest(tag_ids) FROM transactions WHERE user_id = %s ORDER BY 1",
        "demo-user-7",
    )
    assert lookups.filter_values(catalog.get("transactions"), "tag_ids", owner="demo-user-7") == (
        expected,
        False,
    )
    from_view, _ = lookups.filter_values(catalog.get("daily_spending_by_tag"), "tag_ids", owner="demo-user-7")
    assert from_view and set(from_view) <= set(
        expected
    )  # posted spending only; untagged ('' / NULL) left out


def test_search_and_limit(catalog, lookups):
    dataset = catalog.get("transactions")
    every, _ = lookups.filter_values(dataset, "tag_ids", owner="demo-user-7")
    assert lookups.filter_values(dataset, "tag_ids", owner="demo-user-7", search="TAG-1") == (
        [v for v in every if "tag-1" in v],
        False,
    )
    assert lookups.filter_values(dataset, "tag_ids", owner="demo-user-7", limit=2) == (every[:2], True)
    assert lookups.filter_values(dataset, "tag_ids", owner="demo-user-7", search="%") == ([], False)


def test_listed_values_come_from_the_catalog(catalog, lookups):
    dataset = catalog.get("transactions")
    assert lookups.filter_values(dataset, "status", owner="nobody") == (
        ["posted", "pending", "reversed"],
        False,
    )


def test_unknown_values_are_the_ones_the_owner_lacks(stack, catalog, lookups):
    dataset = catalog.get("transactions")
    own = lookups.filter_values(dataset, "account_ids", owner="demo-user-7")[0]
    asked = [*own, "acct-8-1", "missing"]
    assert lookups.unknown_values(dataset, "account_ids", owner="demo-user-7", values=asked) == [
        "acct-8-1",
        "missing",
    ]
    tags = lookups.filter_values(dataset, "tag_ids", owner="demo-user-7")[0]
    assert lookups.unknown_values(dataset, "tag_ids", owner="demo-user-7", values=tags) == []
    assert lookups.unknown_values(dataset, "tag_ids", owner="demo-user-7", values=["tag-404"]) == ["tag-404"]
    assert lookups.unknown_values(dataset, "tag_ids", owner="demo-user-7", values=["a\x00b"]) == ["a\x00b"]
    assert lookups.filter_values(dataset, "tag_ids", owner="demo-user-7", search="\x00") == ([], False)


def test_estimate_is_an_exact_count_when_small_and_cached(stack, catalog, lookups):
    dataset = catalog.get("transactions")
    spec = ExportSpec.for_dataset(
        dataset,
        owner="demo-user-7",
        date_from=date(2023, 1, 1),
        date_to=date(2023, 12, 31),
        filters=Filters(status=("posted",)),
    )
    (expected,) = admin_rows(
        stack,
        "SELECT count(*) FROM transactions WHERE user_id = %s AND status = 'posted'"
        " AND txn_date BETWEEN '2023-01-01' AND '2023-12-31'",
        "demo-user-7",
    )
    estimate = lookups.estimate_rows("ref-1", dataset, spec)
    assert (estimate.rows, estimate.exact) == (expected, True)
    assert expected < EXACT_COUNT_MAX_ESTIMATE


def test_estimate_falls_back_to_the_plan_when_counting_is_slow(stack, catalog, lookups):
    """The `slow` view sleeps 2 ms a row: the count hits the statement timeout, the plan's rows remain."""
    dataset = catalog.get("slow")
    spec = ExportSpec.for_dataset(
        dataset, owner="USD", date_from=date(2019, 1, 1), date_to=date(2021, 12, 31)
    )
    faults.arm(stack.env["SOURCE_ADMIN_URL"], "slow", seconds=120)
    try:
        estimate = lookups.estimate_rows("ref-slow", dataset, spec)
    finally:
        faults.disarm(stack.env["SOURCE_ADMIN_URL"], "slow")
    assert estimate is not None and estimate.rows > 0 and not estimate.exact
    assert lookups.estimate_rows("ref-slow", dataset, spec) is estimate  # once per export, then cached
