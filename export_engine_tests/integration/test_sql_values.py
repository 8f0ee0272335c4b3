"""Request values reach PostgreSQL only as quoted literals: checked on the text the server receives.

The engine interpolates parameters client-side (`cur.mogrify`, COPY takes no server-side parameters),
so "values are bound" means: psycopg2 quotes them, and hostile values match nothing and run nothing.
"""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import psycopg2
import pytest

from export_engine.core.export_spec import ExportSpec, Filters
from export_engine.core.query import copy_csv, select_query

pytestmark = pytest.mark.integration

HOSTILE = "x'); DROP TABLE transactions; --"


def _rows(source, dataset, spec) -> tuple[int, bytes]:
    select, params = select_query(dataset, spec)
    sink = io.BytesIO()
    count = source.stream_copy(copy_csv(select), params, sink)
    return count, sink.getvalue()


def _table_rows(stack) -> int:
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM transactions")
        return cur.fetchone()[0]


def test_the_statement_text_holds_placeholders_and_quoted_identifiers(stack, catalog):
    dataset = catalog.get("transactions")
    spec = ExportSpec(
        "transactions",
        date(2024, 1, 1),
        date(2024, 1, 31),
        owner=HOSTILE,
        columns=("amount", "id"),
        filters=Filters(
            account_ids=(HOSTILE,), tag_ids=("t1",), amount_min=Decimal("-10"), amount_max=Decimal("99.5")
        ),
    )
    select, params = select_query(dataset, spec)
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn:
        text = select.as_string(conn)
        sent = conn.cursor().mogrify(copy_csv(select), params).decode()
    assert text.startswith('SELECT "amount", "id" FROM "transactions" WHERE "user_id" = %(owner)s')
    assert "DROP" not in text
    assert '"account_id" = ANY(%(filter_account_ids)s)' in text
    assert '"tag_ids" && %(filter_tag_ids)s' in text  # an array column: any overlap
    assert '"amount" >= %(filter_amount_min)s' in text and '"amount" <= %(filter_amount_max)s' in text
    # What the server receives: the value as one quoted literal, its quote doubled.
    assert "'x''); DROP TABLE transactions; --'" in sent
    assert sent.count("DROP TABLE") == 2  # the owner and the account filter, both inside literals


def test_hostile_values_match_nothing_and_run_nothing(stack, catalog, source):
    dataset = catalog.get("transactions")
    before = _table_rows(stack)
    owner_attack = ExportSpec("transactions", date(2019, 1, 1), date(2030, 1, 1), owner=HOSTILE)
    assert _rows(source, dataset, owner_attack) == (0, b"".join([_header(dataset), b"\n"]))
    filter_attack = ExportSpec(
        "transactions",
        date(2019, 1, 1),
        date(2030, 1, 1),
        owner="demo-user-7",
        filters=Filters(account_ids=(HOSTILE,), status=("posted' OR '1'='1",)),
    )
    assert _rows(source, dataset, filter_attack)[0] == 0
    assert _table_rows(stack) == before > 0


def test_a_real_owner_still_gets_its_rows(stack, catalog, source):
    """The control for the two tests above: the same path returns rows when the values match."""
    dataset = catalog.get("transactions")
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2030, 1, 1), owner="demo-user-7")
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM transactions WHERE user_id = 'demo-user-7'")
        (expected,) = cur.fetchone()
    assert expected > 0
    assert _rows(source, dataset, spec)[0] == expected


def _header(dataset) -> bytes:
    return ",".join(dataset.columns).encode()
