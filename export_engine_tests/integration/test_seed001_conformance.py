"""Seed 001's own examples, sent literally to `/api/analytics/exports` (real ids substituted).

The gateway runs in-process against the real export DB, source DB and S3 server, with no Dagster:
an export is completed the way the op completes it (`ExportRepository.start`, `run_export`,
`ExportRepository.complete`), so the status bodies come from the same `exports` rows the core API reads.
Response key sets are compared exactly with the document's printed examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
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
from export_engine_tests.helpers import NoDagster, expected_csv

pytestmark = pytest.mark.integration

PATH = "/api/analytics/exports"
USER = "demo-user-41"
# The document's examples, as printed ("uuid" placeholders are replaced with real ids below).
SEED_REQUEST = {
    "dataset_id": "uuid",
    "format": "csv",
    "start_date": "2024-01-01",
    "end_date": "2024-12-31",
    "account_ids": ["uuid1", "uuid2"],
    "tag_ids": ["uuid3"],
}
SEED_CREATED_KEYS = {"job_id", "status", "message"}
SEED_COMPLETED_KEYS = {
    "job_id",
    "status",
    "dataset_id",
    "dataset_name",
    "format",
    "row_count",
    "file_size_bytes",
    "download_url",
    "expires_at",
    "created_at",
    "completed_at",
}
SEED_RUNNING_KEYS = SEED_COMPLETED_KEYS - {"row_count", "file_size_bytes"}


@pytest.fixture(scope="module")
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, launcher=NoDagster()), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def repo(settings) -> ExportRepository:
    return ExportRepository(session_factory(settings.database_url))


def _headers(user: str = USER) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user, secret=DEV_JWT_SECRET)}"}


def _source(stack, sql: str, *params: object) -> list[tuple]:
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


@pytest.fixture(scope="module")
def seed_request(stack) -> dict:
    """The printed request with this user's two first accounts and a tag they use in 2024."""
    accounts = [
        r[0]
        for r in _source(
            stack,
            "SELECT DISTINCT account_id FROM transactions WHERE user_id = %s ORDER BY 1 LIMIT 2",
            USER,
        )
    ]
    ((tag,),) = _source(
        stack,
        "SELECT min(t) FROM transactions, unnest(tag_ids) t WHERE user_id = %s AND txn_date >= '2024-01-01'",
        USER,
    )
    assert len(accounts) == 2 and tag
    return {**SEED_REQUEST, "dataset_id": "transactions", "account_ids": accounts, "tag_ids": [tag]}


def _complete_like_the_op(repo: ExportRepository, catalog, source, storage, job_id: str) -> None:
    run_id = f"run-{job_id}"  # what NoDagster answered, recorded on the row by the gateway
    claim = repo.start(job_id, run_id, stale_after=timedelta(minutes=5), finished_holder=None)
    assert claim is not None
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


def test_the_printed_request_creates_a_job_polled_until_completed(
    client, repo, seed_request, stack, catalog, source, storage
):
    created = client.post(PATH, json=seed_request, headers=_headers())
    assert created.status_code == 202, created.text
    assert set(created.json()) == SEED_CREATED_KEYS
    job_id = created.json()["job_id"]
    assert created.json() == {"job_id": job_id, "status": "pending", "message": "Export job created"}
    assert created.headers["location"] == f"{PATH}/{job_id}"

    pending = client.get(f"{PATH}/{job_id}", headers=_headers())
    assert pending.status_code == 200, pending.text
    assert set(pending.json()) == SEED_RUNNING_KEYS
    assert {k: pending.json()[k] for k in ("status", "dataset_id", "dataset_name", "format")} == {
        "status": "pending",
        "dataset_id": "transactions",
        "dataset_name": "Transactions",
        "format": "csv",
    }
    assert (pending.json()["download_url"], pending.json()["expires_at"], pending.json()["completed_at"]) == (
        None,
        None,
        None,
    )
    # One state: the core API reads the same export, with the document's filters under its own names.
    core = client.get(f"/export/{job_id}", headers=_headers()).json()
    assert (core["status"], core["date_from"], core["date_to"]) == ("PENDING", "2024-01-01", "2024-12-31")
    assert core["filters"] == {
        "account_ids": sorted(seed_request["account_ids"]),
        "tag_ids": seed_request["tag_ids"],
    }

    _complete_like_the_op(repo, catalog, source, storage, job_id)
    done = client.get(f"{PATH}/{job_id}", headers=_headers())
    assert done.status_code == 200, done.text
    body = done.json()
    assert set(body) == SEED_COMPLETED_KEYS
    assert body["status"] == "completed"
    ((count,),) = _source(
        stack,
        "SELECT count(*) FROM transactions WHERE user_id = %s AND account_id = ANY(%s) AND tag_ids && %s"
        " AND txn_date BETWEEN '2024-01-01' AND '2024-12-31'",
        USER,
        seed_request["account_ids"],
        seed_request["tag_ids"],
    )
    assert body["row_count"] == count > 0
    # The signed URL needs no auth header, lives one hour (the document's), and serves the file.
    query = parse_qs(urlsplit(body["download_url"]).query)
    assert query["X-Amz-Expires"] == ["3600"]
    lifetime = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["completed_at"])
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1, minutes=1)
    downloaded = httpx.get(body["download_url"])
    assert downloaded.status_code == 200
    spec = ExportSpec.from_canonical(repo.get(job_id).params)
    assert downloaded.content == expected_csv(
        stack.env["SOURCE_ADMIN_URL"], catalog.get("transactions"), spec
    )
    assert body["file_size_bytes"] == len(downloaded.content)
    assert client.get(f"/export/{job_id}", headers=_headers()).json()["status"] == "COMPLETED"

    # The same request again follows the same dedup rules: the finished file is reused at once.
    again = client.post(PATH, json=seed_request, headers=_headers())
    assert again.status_code == 202, again.text
    assert set(again.json()) == SEED_CREATED_KEYS
    assert again.json()["status"] == "completed"
    assert again.json()["message"] == "Export ready: an identical export's file was reused"
    reused = client.get(f"{PATH}/{again.json()['job_id']}", headers=_headers()).json()
    assert set(reused) == SEED_COMPLETED_KEYS
    assert reused["row_count"] == count
    assert httpx.get(reused["download_url"]).content == downloaded.content


def test_the_verification_curl_without_dates_exports_everything(client, stack):
    created = client.post(PATH, json={"dataset_id": "transactions", "format": "csv"}, headers=_headers())
    assert created.status_code == 202, created.text
    assert set(created.json()) == SEED_CREATED_KEYS
    assert created.json()["status"] == "pending"
    job_id = created.json()["job_id"]
    status = client.get(f"{PATH}/{job_id}", headers=_headers()).json()
    assert set(status) == SEED_RUNNING_KEYS
    core = client.get(f"/export/{job_id}", headers=_headers()).json()
    ((first_day,),) = _source(stack, "SELECT min(txn_date)::text FROM transactions WHERE user_id = %s", USER)
    assert core["date_from"] == first_day
    assert date.fromisoformat(core["date_to"]) >= date.today() - timedelta(days=1)


def test_a_failed_job_keeps_the_keys_and_adds_its_reason(client, repo):
    created = client.post(
        PATH, json={"dataset_id": "monthly_trends", "format": "parquet"}, headers=_headers()
    ).json()
    job_id = created["job_id"]
    assert repo.fail(job_id, "the source database went away", run_id=f"run-{job_id}")
    body = client.get(f"{PATH}/{job_id}", headers=_headers()).json()
    assert set(body) == SEED_RUNNING_KEYS | {"error"}
    assert (body["status"], body["error"], body["download_url"]) == (
        "failed",
        "the source database went away",
        None,
    )
    assert (body["dataset_name"], body["format"]) == ("Monthly trends", "parquet")
    assert body["completed_at"] is not None


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"dataset_id": "fct_transactions", "format": "csv"},
            "dataset_id",
            "unknown dataset_id 'fct_transactions'; valid names: ",
        ),
        (
            {"dataset_id": "transactions", "start_date": "2024-12-31", "end_date": "2024-01-01"},
            "end_date",
            "start_date (2024-12-31) is after end_date (2024-01-01)",
        ),
        (
            {"dataset_id": "transactions", "account_ids": ["acct-nobody"]},
            "account_ids",
            "not among your accounts in transactions: acct-nobody",
        ),
        ({"dataset_id": "transactions", "format": "xlsx"}, "format", "must be one of 'csv' or 'parquet'"),
        ({"table_name": "transactions"}, "table_name", "unknown field"),
    ],
    ids=["unknown-dataset", "dates-reversed", "foreign-account", "format", "core-field-name"],
)
def test_refusals_name_the_documents_fields(client, body, field, message):
    before = client.get("/export", params={"limit": 1}, headers=_headers()).json()["items"]
    answer = client.post(PATH, json=body, headers=_headers())
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    assert [e["field"] for e in errors if e["field"] == field] == [field], errors
    (mine,) = [e for e in errors if e["field"] == field]
    assert mine["message"].startswith(message), mine
    assert client.get("/export", params={"limit": 1}, headers=_headers()).json()["items"] == before


def test_a_job_is_only_its_owners(client):
    job_id = client.post(PATH, json={"dataset_id": "tags"}, headers=_headers()).json()["job_id"]
    other = client.get(f"{PATH}/{job_id}", headers=_headers("demo-user-42"))
    assert other.status_code == 404
    assert other.json()["detail"] == f"export {job_id!r} not found"
    anonymous = client.get(f"{PATH}/{job_id}")
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"] == "missing bearer token: send 'Authorization: Bearer <JWT>'"


def test_the_adapter_has_its_own_openapi_tag(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in ((PATH, "post"), (f"{PATH}/{{job_id}}", "get")):
        assert paths[path][method]["tags"] == ["seed 001: analytics exports"]
