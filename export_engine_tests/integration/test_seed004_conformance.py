"""Seed 004's own examples, sent literally to `/api/exports/...` (real ids substituted).

The quick start and every printed body, against the in-process gateway (real export DB, source DB and
S3 server, no Dagster; exports completed the way the op completes them). Key sets are compared exactly
with the document's; the status body also carries `progress`, which the quick start reads.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import openpyxl
import psycopg2
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.security import issue_token
from export_engine.core.export_spec import ExportSpec
from export_engine.db.session import session_factory
from export_engine.lifecycle.repository import ExportRepository
from export_engine.pipeline.export import run_export
from export_engine.settings import DEV_JWT_SECRET
from export_engine_tests.helpers import NoDagster

pytestmark = pytest.mark.integration

USER = "demo-user-54"
HOST = "http://testserver"  # the seed's http://localhost:8000
# The document's examples, as printed (EZPASS and POSTED_TO_LEDGER are replaced below).
QUICK_START = {
    "export_type": "EZPASS",
    "format": "excel",
    "filters": {"from_posting_date": "2024-01-01", "to_posting_date": "2024-01-31"},
}
API_REQUEST = {
    "export_type": "EZPASS",
    "format": "excel",
    "filters": {
        "from_posting_date": "2024-01-01",
        "to_posting_date": "2024-01-31",
        "status": "POSTED_TO_LEDGER",
    },
}
CREATED_KEYS = {"export_id", "status", "message", "status_url"}
STATUS_KEYS = {"export_id", "status", "total_records", "file_url", "created_at", "completed_at"} | {
    "progress"
}
PAGE_KEYS = {"items", "total_items", "page", "per_page", "total_pages"}


@pytest.fixture(scope="module")
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, launcher=NoDagster()), raise_server_exceptions=False) as client:
        yield client


def _headers(user: str = USER) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user, secret=DEV_JWT_SECRET)}"}


def _source(stack, sql: str, *params: object) -> list[tuple]:
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _reference_id(settings, export_id: int) -> str:
    with psycopg2.connect(settings.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT reference_id FROM exports WHERE serial_id = %s", (export_id,))
        ((reference_id,),) = cur.fetchall()
    return reference_id


def _complete_like_the_op(repo, catalog, source, storage, reference_id: str) -> int:
    run_id = f"run-{reference_id}"  # what NoDagster answered, recorded on the row by the gateway
    claim = repo.start(reference_id, run_id, stale_after=timedelta(minutes=5), finished_holder=None)
    assert claim is not None
    spec = ExportSpec.from_canonical(claim.export.params)
    result = run_export(
        spec, spec.object_key(reference_id, run_id), catalog=catalog, source=source, storage=storage
    )
    assert repo.complete(
        reference_id,
        run_id,
        s3_key=result.s3_key,
        row_count=result.row_count,
        file_size_bytes=result.file_size_bytes,
        retention=timedelta(hours=24),
    )
    return result.row_count


def test_quick_start_request_status_and_host_plus_file_url_download(
    client, settings, stack, catalog, source, storage
):
    repo = ExportRepository(session_factory(settings.database_url))
    # 1. Create an Export
    response = client.post(
        f"{HOST}/api/exports/request", headers=_headers(), json={**QUICK_START, "export_type": "TRANSACTIONS"}
    )
    assert response.status_code == 202, response.text
    assert set(response.json()) == CREATED_KEYS
    export_id = response.json()["export_id"]
    assert isinstance(export_id, int)
    assert response.json()["status"] == "PENDING"
    assert response.json()["status_url"] == f"/api/exports/{export_id}/status"
    assert response.json()["message"].startswith("Export job created successfully")
    assert response.headers["location"] == f"/api/exports/{export_id}/status"

    # 2. Check Status
    status = client.get(f"{HOST}/api/exports/{export_id}/status", headers=_headers()).json()
    assert set(status) == STATUS_KEYS
    assert (status["status"], status.get("progress", 0), status["file_url"], status["total_records"]) == (
        "PENDING",
        0,
        None,
        None,
    )
    # One state: the core API reads the same export, the seed's dates as its range.
    reference_id = _reference_id(settings, export_id)
    core = client.get(f"/export/{reference_id}", headers=_headers()).json()
    assert (core["table_name"], core["format"], core["date_from"], core["date_to"]) == (
        "transactions",
        "xlsx",
        "2024-01-01",
        "2024-01-31",
    )

    rows = _complete_like_the_op(repo, catalog, source, storage, reference_id)
    status = client.get(f"{HOST}/api/exports/{export_id}/status", headers=_headers()).json()
    assert set(status) == STATUS_KEYS
    ((count,),) = _source(
        stack,
        "SELECT count(*) FROM transactions WHERE user_id = %s AND txn_date BETWEEN '2024-01-01' AND '2024-01-31'",
        USER,
    )
    assert (status["status"], status["progress"], status["total_records"]) == ("COMPLETED", 100, count)
    assert rows == count > 0
    assert status["file_url"] == f"/api/exports/{export_id}/download"

    # 3. Download When Complete: download_url = f"http://localhost:8000{status['file_url']}"
    download_url = f"{HOST}{status['file_url']}"
    redirect = client.get(download_url, headers=_headers(), follow_redirects=False)
    assert redirect.status_code == 302, redirect.text
    downloaded = httpx.get(redirect.headers["location"])  # what requests.get(download_url) follows to
    assert downloaded.status_code == 200
    assert "attachment" in downloaded.headers["content-disposition"]
    assert "transactions_2024-01-01_2024-01-31.xlsx" in downloaded.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(downloaded.content)).worksheets[0]
    assert sheet.max_row == count + 1

    # The same request again (final data): the finished file is reused, a new export_id, 202 as printed.
    again = client.post(
        "/api/exports/request", headers=_headers(), json={**QUICK_START, "export_type": "transactions"}
    )
    assert again.status_code == 202, again.text
    assert set(again.json()) == CREATED_KEYS
    assert again.json()["status"] == "COMPLETED" and again.json()["export_id"] != export_id


def test_the_printed_api_request_and_its_202(client, settings):
    body = {
        **API_REQUEST,
        "export_type": "TRANSACTIONS",
        "filters": {**API_REQUEST["filters"], "status": "POSTED"},
    }
    response = client.post("/api/exports/request", json=body, headers=_headers())
    assert response.status_code == 202, response.text
    export_id = response.json()["export_id"]
    assert response.json() == {
        "export_id": export_id,
        "status": "PENDING",
        "message": "Export job created successfully; poll status_url until status is COMPLETED, then get file_url",
        "status_url": f"/api/exports/{export_id}/status",
    }
    core = client.get(f"/export/{_reference_id(settings, export_id)}", headers=_headers()).json()
    assert core["filters"] == {"status": ["posted"]}
    # An identical request in flight is joined: the same export_id, still 202.
    joined = client.post("/api/exports/request", json=body, headers=_headers())
    assert (joined.status_code, joined.json()["export_id"]) == (202, export_id)
    assert joined.json()["message"].startswith("Export job created successfully")


def test_the_seeds_filters_translate_to_the_core_request(client, settings):
    filters = {
        "from_transaction_date": "2023-02-01",
        "to_transaction_date": "2023-02-28",
        "from_amount": 5.00,
        "to_amount": 50.00,
        "status": "posted,PENDING",
    }
    response = client.post(
        "/api/exports/request",
        json={"export_type": "transactions", "format": "csv", "filters": filters},
        headers=_headers(),
    )
    assert response.status_code == 202, response.text
    core = client.get(
        f"/export/{_reference_id(settings, response.json()['export_id'])}", headers=_headers()
    ).json()
    assert (core["date_from"], core["date_to"]) == ("2023-02-01", "2023-02-28")
    assert core["filters"] == {"amount_min": "5", "amount_max": "50", "status": ["pending", "posted"]}


def test_my_exports_pages_by_number(client, settings):
    for dataset in ("accounts", "monthly_trends", "daily_spending_by_tag"):
        body = {"export_type": dataset, "format": "csv", "filters": {"to_posting_date": "2024-03-31"}}
        assert client.post("/api/exports/request", json=body, headers=_headers()).status_code == 202
    with psycopg2.connect(settings.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM exports WHERE owner = %s AND kind = 'export'", (USER,))
        ((total,),) = cur.fetchall()
    assert total >= 3
    first = client.get("/api/exports/my-exports", params={"per_page": 2}, headers=_headers())
    assert first.status_code == 200, first.text
    page = first.json()
    assert set(page) == PAGE_KEYS
    assert (page["total_items"], page["page"], page["per_page"], page["total_pages"]) == (
        total,
        1,
        2,
        math.ceil(total / 2),
    )
    assert len(page["items"]) == 2 and all(set(item) == STATUS_KEYS for item in page["items"])
    last = client.get(
        "/api/exports/my-exports", params={"page": page["total_pages"], "per_page": 2}, headers=_headers()
    ).json()
    assert len(last["items"]) == total - 2 * (page["total_pages"] - 1)
    seen = {item["export_id"] for item in page["items"]} | {item["export_id"] for item in last["items"]}
    assert len(seen) == len(page["items"]) + len(last["items"])  # newest first, no export twice
    default = client.get("/api/exports/my-exports", headers=_headers()).json()
    assert (default["page"], default["per_page"]) == (1, 10)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            API_REQUEST,
            "export_type",
            "unknown export type 'EZPASS'; valid types: ACCOUNTS, DAILY_SPENDING_BY_TAG",
        ),
        (
            {**QUICK_START, "export_type": "transactions", "filters": {"plate_number": "ABC123,XYZ789"}},
            "filters",
            "unknown filter 'plate_number' (this deployment exports bank data, not taxi data)",
        ),
        (
            {**QUICK_START, "export_type": "monthly_trends", "format": "pdf"},
            "format",
            "dataset 'monthly_trends' is not available as 'pdf'",
        ),
        (
            {
                "export_type": "transactions",
                "format": "csv",
                "filters": {"from_posting_date": "2024-02-01", "to_posting_date": "2024-01-01"},
            },
            "filters.to_posting_date",
            "date_from (2024-02-01) is after date_to (2024-01-01)",
        ),
        (
            {"export_type": "transactions", "format": "csv", "filters": {"account_id": "acct-nobody"}},
            "filters.account_id",
            "not among your accounts in transactions: acct-nobody",
        ),
    ],
    ids=["taxi-type", "taxi-filter", "pdf-of-an-aggregate", "dates-reversed", "foreign-account"],
)
def test_refusals_name_the_documents_fields(client, body, field, message):
    answer = client.post("/api/exports/request", json=body, headers=_headers())
    assert answer.status_code == 422, answer.text
    fields = [e for e in answer.json()["errors"] if e["field"] == field]
    assert len(fields) == 1, answer.json()
    assert message in fields[0]["message"]


def test_an_export_is_only_its_owners_and_downloads_only_once_completed(client):
    export_id = client.post(
        "/api/exports/request",
        json={
            "export_type": "tags",
            "format": "json",
            "filters": {"to_posting_date": str(date(2024, 6, 30))},
        },
        headers=_headers(),
    ).json()["export_id"]
    early = client.get(f"/api/exports/{export_id}/download", headers=_headers(), follow_redirects=False)
    assert early.status_code == 409
    assert early.json()["detail"] == f"export {export_id} is PENDING; only a COMPLETED export has a file"
    for path in ("status", "download"):
        other = client.get(f"/api/exports/{export_id}/{path}", headers=_headers("demo-user-55"))
        assert (other.status_code, other.json()["detail"]) == (404, f"export '{export_id}' not found")
    missing = client.get("/api/exports/not-a-number/status", headers=_headers())
    assert (missing.status_code, missing.json()["detail"]) == (404, "export 'not-a-number' not found")
