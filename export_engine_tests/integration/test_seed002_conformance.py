"""Seed 002's own examples, sent literally to `/export/records/...` and `/export/jobs` (real ids substituted).

In-process gateway, real export DB, source DB and S3 server, no Dagster: a background job is completed
the way the op completes it, so job bodies come from the same `exports` rows the core API reads. Streams
are compared byte for byte with the core `POST /export/stream`; key sets exactly with `ExportJobResponse`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import openpyxl
import psycopg2
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.security import issue_token
from export_engine.core.dedup import business_today
from export_engine.core.export_spec import ExportSpec, Filters
from export_engine.db.session import session_factory
from export_engine.lifecycle.repository import ExportRepository
from export_engine.pipeline.export import run_export
from export_engine.settings import DEV_JWT_SECRET
from export_engine_tests.helpers import NoDagster, expected_csv

pytestmark = pytest.mark.integration

USER = "demo-user-52"
LOW_LIMIT = 50  # STREAM_MAX_ROWS for the background tests: the seed's 10K split, at a size the demo data has
# The document's ExportJobResponse fields, all present (null where unset).
JOB_KEYS = {"job_id", "status", "row_count", "file_url", "error", "created_at", "completed_at"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, launcher=NoDagster()), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def low_limit(settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"stream_max_rows": LOW_LIMIT}), launcher=NoDagster())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def account(stack) -> str:
    ((account_id,),) = _source(stack, "SELECT min(account_id) FROM transactions WHERE user_id = %s", USER)
    return account_id


def _headers(user: str = USER) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user, secret=DEV_JWT_SECRET)}"}


def _source(stack, sql: str, *params: object) -> list[tuple]:
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _disposition(settings, account: str, ext: str) -> str:
    today = business_today(datetime.now(UTC), settings.business_timezone).isoformat()
    return f'attachment; filename="records_{account}_{today}.{ext}"'


def _core_stream(client, account: str, fmt: str, **body) -> httpx.Response:
    core = {"table_name": "transactions", "format": fmt, "filters": {"account_ids": [account]}, **body}
    answer = client.post("/export/stream", json=core, headers=_headers())
    assert answer.status_code == 200, answer.text
    return answer


def test_verification_1_curl_streams_the_accounts_csv(client, stack, settings, account):
    # curl "http://localhost:8000/export/records/csv?account_id={id}" -H "Authorization: Bearer {token}"
    answer = client.get(f"/export/records/csv?account_id={account}", headers=_headers())
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == _disposition(settings, account, "csv")
    assert answer.content == _core_stream(client, account, "csv").content
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    ((count,),) = _source(
        stack, "SELECT count(*) FROM transactions WHERE user_id = %s AND account_id = %s", USER, account
    )
    assert len(rows) == count > 0
    assert {(r["user_id"], r["account_id"]) for r in rows} == {(USER, account)}


def test_verification_2_curl_streams_json_as_a_records_object(client, settings, account):
    answer = client.get(f"/export/records/json?account_id={account}", headers=_headers())
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.headers["content-disposition"] == _disposition(settings, account, "json")
    body = json.loads(answer.content)
    assert set(body) == {"records"}
    assert body["records"] == json.loads(_core_stream(client, account, "json").content)
    assert len(body["records"]) > 0


def test_verification_3_curl_downloads_a_valid_workbook(client, settings, account):
    # curl ".../export/records/excel?account_id={id}" -H "Authorization: Bearer {token}" -o test.xlsx
    answer = client.get(f"/export/records/excel?account_id={account}", headers=_headers())
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == XLSX
    assert answer.headers["content-disposition"] == _disposition(settings, account, "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(answer.content)).worksheets[0]
    core = openpyxl.load_workbook(io.BytesIO(_core_stream(client, account, "xlsx").content)).worksheets[0]
    assert [r for r in sheet.iter_rows(values_only=True)] == [r for r in core.iter_rows(values_only=True)]
    assert sheet.max_row == int(answer.headers["x-export-rows"]) + 1


def test_query_parameters_select_columns_status_and_dates(client, stack, catalog, account):
    answer = client.get(
        "/export/records/csv",
        params={
            "account_id": account,
            "columns": "txn_date, amount,status",
            "status": "posted",
            "date_from": "2021-01-01",
            "date_to": "2022-12-31",
        },
        headers=_headers(),
    )
    assert answer.status_code == 200, answer.text
    assert answer.text.splitlines()[0] == "txn_date,amount,status"
    spec = ExportSpec.for_dataset(
        catalog.get("transactions"),
        owner=USER,
        date_from=datetime(2021, 1, 1).date(),
        date_to=datetime(2022, 12, 31).date(),
        format="csv",
        compression=None,
        columns=["txn_date", "amount", "status"],
        filters=Filters(account_ids=(account,), status=("posted",)),
    )
    assert answer.content == expected_csv(stack.env["SOURCE_ADMIN_URL"], catalog.get("transactions"), spec)
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows and {r["status"] for r in rows} == {"posted"}
    assert all("2021-01-01" <= r["txn_date"] <= "2022-12-31" for r in rows)


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("columns=txn_date,ebay_order_id", "columns", "unknown column 'ebay_order_id' for dataset"),
        ("status=SHIPPED", "status", "unknown value 'SHIPPED'; valid values: posted, pending, reversed"),
        ("date_from=2024-12-31&date_to=2024-01-01", "date_to", "date_from (2024-12-31) is after date_to"),
    ],
    ids=["column", "status", "dates"],
)
def test_refusals_name_the_documents_parameters(client, account, query, field, message):
    answer = client.get(f"/export/records/csv?account_id={account}&{query}", headers=_headers())
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["errors"]
    assert error["field"] == field
    assert message in error["message"]


def test_an_account_that_is_not_yours_or_missing_is_refused(client):
    foreign = client.get("/export/records/csv?account_id=acct-nobody", headers=_headers())
    assert foreign.status_code == 422, foreign.text
    assert foreign.json()["errors"] == [
        {"field": "account_id", "message": "not among your accounts in transactions: acct-nobody"}
    ]
    missing = client.get("/export/records/json", headers=_headers())
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "account_id"


def test_more_rows_than_a_stream_holds_names_the_background_job(low_limit, account):
    answer = low_limit.get(f"/export/records/csv?account_id={account}", headers=_headers())
    assert answer.status_code == 413, answer.text
    assert answer.json()["detail"] == (
        f"these records are more than {LOW_LIMIT} rows, the most a streaming answer holds; "
        "POST /export/records/background with the same fields exports them as a background job"
    )


def test_a_small_background_job_is_pointed_to_the_streaming_endpoint(low_limit, stack, account):
    body = {"account_id": account, "format": "CSV", "date_from": "2023-03-01", "date_to": "2023-03-31"}
    answer = low_limit.post("/export/records/background", json=body, headers=_headers())
    assert answer.status_code == 422, answer.text
    ((rows,),) = _source(
        stack,
        "SELECT count(*) FROM transactions WHERE user_id = %s AND account_id = %s"
        " AND txn_date BETWEEN '2023-03-01' AND '2023-03-31'",
        USER,
        account,
    )
    assert answer.json() == {
        "detail": f"these records are {rows} rows, at most {LOW_LIMIT}: use the streaming endpoint "
        f"GET /export/records/csv?account_id={account}&date_from=2023-03-01&date_to=2023-03-31 "
        "(background jobs are for more rows)",
        "errors": [],
    }


def test_a_background_job_is_polled_until_its_file_is_ready(
    low_limit, settings, stack, catalog, source, storage, account
):
    repo = ExportRepository(session_factory(settings.database_url))
    body = {
        "account_id": account,
        "format": "excel",
        "columns": ["id", "txn_date", "amount"],
        "date_from": "2019-01-01",
        "date_to": "2025-12-31",  # final data: the same request joins the job in flight (dedup rules)
    }
    created = low_limit.post("/export/records/background", json=body, headers=_headers())
    assert created.status_code == 202, created.text
    job = created.json()
    assert set(job) == JOB_KEYS
    assert (job["status"], job["row_count"], job["file_url"], job["error"]) == ("PENDING", None, None, None)
    job_id = job["job_id"]
    # One state: the core API reads the same export, and the same request joins the job in flight.
    core = low_limit.get(f"/export/{job_id}", headers=_headers()).json()
    assert (core["status"], core["format"], core["filters"]) == (
        "PENDING",
        "xlsx",
        {"account_ids": [account]},
    )
    again = low_limit.post("/export/records/background", json=body, headers=_headers())
    assert (again.status_code, again.json()["job_id"]) == (202, job_id)

    run_id = f"run-{job_id}"  # what NoDagster answered, recorded on the row by the gateway
    claim = repo.start(job_id, run_id, stale_after=timedelta(minutes=5), finished_holder=None)
    assert claim is not None
    running = low_limit.get(f"/export/jobs/{job_id}", headers=_headers()).json()
    assert set(running) == JOB_KEYS
    assert (running["status"], running["row_count"], running["completed_at"]) == ("PROCESSING", None, None)

    spec = ExportSpec.from_canonical(claim.export.params)
    result = run_export(
        spec, spec.object_key(job_id, run_id), catalog=catalog, source=source, storage=storage
    )
    assert repo.complete(
        job_id,
        run_id,
        s3_key=result.s3_key,
        row_count=result.row_count,
        file_size_bytes=result.file_size_bytes,
        retention=timedelta(hours=24),
    )
    done = low_limit.get(f"/export/jobs/{job_id}", headers=_headers())
    assert done.status_code == 200, done.text
    finished = done.json()
    assert set(finished) == JOB_KEYS
    ((count,),) = _source(
        stack, "SELECT count(*) FROM transactions WHERE user_id = %s AND account_id = %s", USER, account
    )
    assert (finished["status"], finished["row_count"], finished["error"]) == ("COMPLETED", count, None)
    assert count > LOW_LIMIT
    downloaded = httpx.get(finished["file_url"])
    assert downloaded.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(downloaded.content)).worksheets[0]
    assert next(sheet.iter_rows(values_only=True)) == ("id", "txn_date", "amount")
    assert sheet.max_row == count + 1

    listed = low_limit.get("/export/jobs", params={"limit": 100}, headers=_headers())
    assert listed.status_code == 200, listed.text
    assert set(listed.json()) == {"items", "next_cursor"}
    (mine,) = [item for item in listed.json()["items"] if item["job_id"] == job_id]
    assert set(mine) == JOB_KEYS and mine["status"] == "COMPLETED"
    other = low_limit.get(f"/export/jobs/{job_id}", headers=_headers("demo-user-53"))
    assert (other.status_code, other.json()["detail"]) == (404, f"export {job_id!r} not found")


def test_a_canceled_job_reads_as_failed_with_its_reason(low_limit, account):
    body = {"account_id": account, "format": "json", "status": "posted"}
    job_id = low_limit.post("/export/records/background", json=body, headers=_headers()).json()["job_id"]
    assert low_limit.delete(f"/export/{job_id}", headers=_headers()).json()["status"] == "CANCELED"
    job = low_limit.get(f"/export/jobs/{job_id}", headers=_headers()).json()
    assert set(job) == JOB_KEYS
    assert (job["status"], job["error"], job["file_url"]) == (
        "FAILED",
        "canceled by its owner",
        None,
    )


def test_unknown_jobs_and_formats_are_refused(client):
    missing = client.get("/export/jobs/00000000-0000-4000-8000-000000000000", headers=_headers())
    assert missing.status_code == 404
    assert missing.json()["detail"] == "export '00000000-0000-4000-8000-000000000000' not found"
    unknown = client.post(
        "/export/records/background", json={"account_id": "x", "format": "pdf"}, headers=_headers()
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [
        {"field": "format", "message": "must be one of 'csv', 'json' or 'excel'"}
    ]
