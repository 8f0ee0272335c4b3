"""Formats, filters and listings through the gateway, with real Dagster runs behind it.

Per-format byte checks live in the integration tier (`test_formats.py`); here: one typed export end
to end, the catalog, the 422s, the listing and the download redirect.
"""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
import psycopg2
import pyarrow as pa
import pytest

from export_engine.runs.resources import S3StorageResource
from export_engine_tests.unit.test_writers import read_parquet

pytestmark = pytest.mark.e2e

TRANSACTION_COLUMNS = [
    "id",
    "user_id",
    "account_id",
    "txn_date",
    "posted_at",
    "amount",
    "currency",
    "description",
    "counterparty",
    "category",
    "tag_ids",
    "status",
    "balance_after",
]


def _download(api, user: str, reference_id: str) -> httpx.Response:
    redirect = api.http.get(
        f"/export/{reference_id}/download", headers=api.headers(user), follow_redirects=False
    )
    assert redirect.status_code == 302, redirect.text
    assert redirect.headers["cache-control"] == "no-store"
    response = httpx.get(redirect.headers["location"], timeout=60)  # no credentials but the signature
    assert response.status_code == 200, response.text
    return response


def test_datasets_describe_the_catalog(api):
    response = api.http.get("/datasets", headers=api.headers("demo-user-1"))
    assert response.status_code == 200, response.text
    datasets = {d["id"]: d for d in response.json()["datasets"]}
    assert {"transactions", "daily_spending_by_tag", "monthly_trends"} <= set(datasets)
    transactions = datasets["transactions"]
    assert transactions["time_grain"] == "daily" and transactions["date_column"] == "txn_date"
    assert [c["name"] for c in transactions["columns"]] == TRANSACTION_COLUMNS
    assert {"name": "amount", "type": "numeric(14,2)"} in transactions["columns"]
    assert [f["name"] for f in transactions["filters"]] == [
        "account_ids",
        "tag_ids",
        "status",
        "amount_min",
        "amount_max",
    ]
    assert transactions["filters"][2]["values"] == ["posted", "pending", "reversed"]
    assert transactions["formats"] == ["csv", "parquet", "jsonl", "json", "xlsx", "pdf"]
    assert transactions["compressions"] == {"gzip": ["csv", "jsonl", "json"]}
    assert (
        datasets["monthly_trends"]["time_grain"] == "monthly" and datasets["monthly_trends"]["filters"] == []
    )
    assert datasets["daily_spending_by_tag"]["description"]

    anonymous = api.http.get("/datasets")
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"] == "missing bearer token: send 'Authorization: Bearer <JWT>'"


def test_parquet_export_with_filters_and_columns_end_to_end(api, stack):
    user = "demo-user-21"
    body = {
        "table_name": "transactions",
        "date_from": "2021-01-01",
        "date_to": "2021-12-31",
        "format": "parquet",
        "columns": ["id", "txn_date", "amount", "tag_ids"],
        "filters": {"account_ids": ["acct-21-2", "acct-21-1"], "amount_max": "0"},
    }
    created = api.post(user, **body)
    assert created.status_code == 202, created.text
    reference_id = created.json()["reference_id"]
    export = api.wait(user, reference_id)
    assert export["status"] == "COMPLETED", export
    assert export["format"] == "parquet" and export["columns"] == body["columns"]
    assert export["filters"] == {"account_ids": ["acct-21-1", "acct-21-2"], "amount_max": "0"}

    download = _download(api, user, reference_id)
    assert download.headers["content-type"] == "application/vnd.apache.parquet"
    # a column subset with filters is named apart from the full file
    assert re.search(
        r'filename="transactions_2021-01-01_2021-12-31_columns-filtered_[0-9a-f]{8}\.parquet"',
        download.headers["content-disposition"],
    )
    table = read_parquet(download.content)
    assert table.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("txn_date", pa.date32()),
            ("amount", pa.decimal128(14, 2)),
            ("tag_ids", pa.list_(pa.string())),
        ]
    )
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id, txn_date, amount, tag_ids FROM transactions WHERE user_id = %s AND txn_date "
            "BETWEEN '2021-01-01' AND '2021-12-31' AND account_id IN ('acct-21-1', 'acct-21-2') "
            "AND amount <= 0 ORDER BY txn_date, id",
            (user,),
        )
        expected = [
            dict(zip(["id", "txn_date", "amount", "tag_ids"], row, strict=True)) for row in cur.fetchall()
        ]
    assert table.to_pylist() == expected and export["row_count"] == len(expected) > 0
    assert all(row["amount"] <= Decimal(0) for row in expected)

    # the same file for the same ids in another order; another column list is another file
    again = api.post(
        user, **{**body, "filters": {"amount_max": "0.00", "account_ids": ["acct-21-1", "acct-21-2"]}}
    )
    assert again.status_code == 200, again.text
    assert again.json()["reused_from_ref"] == reference_id
    other = api.post(user, **{**body, "columns": ["amount", "id"]})
    assert other.status_code == 202, other.text
    assert api.wait(user, other.json()["reference_id"])["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"columns": ["id", "secret"]},
            "columns: unknown column 'secret' for dataset 'transactions'; valid columns: "
            + ", ".join(TRANSACTION_COLUMNS),
        ),
        (
            {"columns": []},
            "columns: the list is empty; omit it for every column, or pick from valid columns: "
            + ", ".join(TRANSACTION_COLUMNS),
        ),
        (
            {"filters": {"colour": ["red"]}},
            "filters: unknown filter 'colour'; valid filters: "
            "account_ids, tag_ids, status, amount_min, amount_max",
        ),
        (
            {"table_name": "monthly_trends", "filters": {"account_ids": ["acct-1-1"]}},
            "filters: dataset 'monthly_trends' does not support the filter 'account_ids'; "
            "supported filters: none",
        ),
        (
            {"filters": {"tag_ids": []}},
            "filters.tag_ids: must list at least one value; leave the filter out to keep every row",
        ),
        (
            {"filters": {"status": ["posted", "lost"]}},
            "filters.status: unknown value 'lost'; valid values: posted, pending, reversed",
        ),
        (
            {"filters": {"amount_min": "10", "amount_max": "-1"}},
            "filters: amount_min (10) is greater than amount_max (-1)",
        ),
        (
            {"format": "parquet", "compression": "gzip"},
            "compression: 'gzip' is only available with format 'csv', 'jsonl' or 'json', not 'parquet'",
        ),
        ({"compression": "brotli"}, "compression: must be one of 'gzip'"),
        ({"format": "docx"}, "format: must be one of 'csv', 'parquet', 'jsonl', 'json', 'xlsx' or 'pdf'"),
    ],
)
def test_bad_formats_columns_and_filters_are_422_naming_the_valid_choices(api, change, message):
    before = api.export_count()
    body = {"table_name": "transactions", "date_from": "2021-01-01", "date_to": "2021-01-31", **change}
    response = api.post("demo-user-22", **body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == message
    assert api.export_count() == before


def test_listing_is_newest_first_paginated_and_filterable(api):
    user = "lister-user"  # owns no rows: every file is an empty one, made quickly
    created = []
    for fmt in ("csv", "jsonl", "xlsx"):
        response = api.post(
            user, table_name="transactions", date_from="2020-03-01", date_to="2020-03-31", format=fmt
        )
        assert response.status_code == 202, response.text
        created.append(response.json()["reference_id"])
    for reference_id in created:
        assert api.wait(user, reference_id)["status"] == "COMPLETED"
    newest_first = created[::-1]

    def page(**params):
        response = api.http.get("/export", params=params, headers=api.headers(user))
        assert response.status_code == 200, response.text
        return response.json()

    first = page(limit=2)
    assert [e["reference_id"] for e in first["items"]] == newest_first[:2]
    assert first["items"][0]["format"] == "xlsx" and first["items"][0]["download_url"]
    second = page(limit=2, cursor=first["next_cursor"])
    assert [e["reference_id"] for e in second["items"]] == newest_first[2:]
    assert "next_cursor" not in second
    assert [e["reference_id"] for e in page(status="COMPLETED")["items"]] == newest_first
    assert page(status="FAILED")["items"] == []

    others = api.http.get("/export", headers=api.headers("demo-user-23")).json()["items"]
    assert not {e["reference_id"] for e in others} & set(created)

    for params, message in (
        ({"cursor": "not-a-cursor"}, "cursor: not a cursor from this API; pass back `next_cursor` unchanged"),
        (
            {"status": "DONE"},
            "status: must be one of "
            "'PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'SUPERSEDED', 'EXPIRED' or 'CANCELED'",
        ),
        ({"limit": 0}, "limit: Input should be greater than or equal to 1"),
    ):
        response = api.http.get("/export", params=params, headers=api.headers(user))
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == message


def test_download_redirects_only_to_the_owners_finished_file(api, settings):
    user = "downloader-user"
    created = api.post(
        user,
        table_name="monthly_trends",
        date_from="2020-01-01",
        date_to="2020-12-31",
        format="csv",
        compression="gzip",
    )
    assert created.status_code == 202, created.text
    reference_id = created.json()["reference_id"]

    # The 409 for a download before the file exists: integration/test_gateway_in_process.py, where the
    # export stays PENDING for sure (a fake launcher); here the run may finish before a first GET.
    assert api.wait(user, reference_id)["status"] == "COMPLETED"

    download = _download(api, user, reference_id)
    assert download.headers["content-type"] == "application/gzip"
    assert 'filename="monthly_trends_2020-01-01_2020-12-31.csv.gz"' in download.headers["content-disposition"]
    assert download.content[:2] == b"\x1f\x8b"

    stranger = api.http.get(
        f"/export/{reference_id}/download", headers=api.headers("demo-user-1"), follow_redirects=False
    )
    assert stranger.status_code == 404
    assert stranger.json()["detail"] == f"export {reference_id!r} not found"

    storage = S3StorageResource.from_settings(settings)
    storage.client.delete_object(Bucket=storage.bucket, Key=_s3_key(api, reference_id))
    gone = api.http.get(f"/export/{reference_id}/download", headers=api.headers(user), follow_redirects=False)
    assert gone.status_code == 410
    assert gone.json()["detail"] == (
        f"the file of export {reference_id!r} no longer exists; request the export again"
    )


def _s3_key(api, reference_id: str) -> str:
    with psycopg2.connect(api.stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT s3_key FROM exports WHERE reference_id = %s", (reference_id,))
        return cur.fetchone()[0]
