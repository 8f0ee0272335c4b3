"""A request without dates exports everything: from the owner's first row to today (BUSINESS_TIMEZONE)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import psycopg2
import pytest

pytestmark = pytest.mark.e2e


def _today() -> str:
    return datetime.now(UTC).date().isoformat()  # the test stack's BUSINESS_TIMEZONE is UTC


def _owner_rows(api, owner: str) -> tuple[int, str | None]:
    with psycopg2.connect(api.stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), min(txn_date)::text FROM transactions WHERE user_id = %s AND txn_date <= %s",
            (owner, _today()),
        )
        return cur.fetchone()


def test_no_dates_exports_every_row_from_the_first_to_today_and_is_never_reused(api):
    owner = "demo-user-64"
    rows, first_day = _owner_rows(api, owner)
    assert rows > 0
    before = _today()
    created = api.post(owner, table_name="transactions")
    assert created.status_code == 202, created.text
    export = api.wait(owner, created.json()["reference_id"])
    assert export["status"] == "COMPLETED", export
    assert export["date_from"] == first_day
    assert export["date_to"] in {before, _today()}
    assert export["row_count"] == rows

    again = api.post(owner, table_name="transactions")  # a range ending today is still open
    assert again.status_code == 202, again.text
    assert again.json().get("reused_from_ref") is None  # left out when none
    assert again.json()["reference_id"] != export["reference_id"]
    api.wait(owner, again.json()["reference_id"])


def test_only_date_from_runs_to_today_and_only_date_to_starts_at_the_first_row(api):
    owner = "demo-user-65"
    _, first_day = _owner_rows(api, owner)
    started = api.post(owner, table_name="transactions", date_from="2024-06-01", format="jsonl")
    assert started.status_code == 202, started.text
    export = api.get(owner, started.json()["reference_id"]).json()
    assert (export["date_from"], export["date_to"]) == ("2024-06-01", _today())
    ended = api.post(owner, table_name="transactions", date_to="2020-06-30", format="jsonl")
    assert ended.status_code == 202, ended.text
    export = api.get(owner, ended.json()["reference_id"]).json()
    assert (export["date_from"], export["date_to"]) == (first_day, "2020-06-30")
    api.drain()


def test_a_start_after_today_names_the_field_and_writes_nothing(api):
    before = api.export_count()
    response = api.post("demo-user-66", table_name="transactions", date_from="2999-01-01")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "date_from"
    assert "is after date_to (today, " in response.json()["detail"]
    assert api.export_count() == before


def test_an_owner_without_rows_gets_an_empty_file_for_today(api):
    owner = "nobody-has-rows-here"
    created = api.post(owner, table_name="transactions")
    assert created.status_code == 202, created.text
    export = api.wait(owner, created.json()["reference_id"])
    assert export["status"] == "COMPLETED"
    assert export["date_from"] == export["date_to"] == _today()
    assert export["row_count"] == 0


def test_the_stream_without_dates_answers_every_row(api):
    owner = "demo-user-67"
    with psycopg2.connect(api.stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM monthly_trends WHERE user_id = %s", (owner,))
        (expected,) = cur.fetchone()
    response = api.http.post(
        "/export/stream", json={"table_name": "monthly_trends"}, headers=api.headers(owner)
    )
    assert response.status_code == 200, response.text
    assert len(list(csv.DictReader(io.StringIO(response.text)))) == expected > 0
    assert response.headers["x-export-rows"] == str(expected)
