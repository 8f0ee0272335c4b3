"""The product end to end: gateway → Dagster daemon → run worker → S3 → signed URL → plain HTTP download."""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from export_engine.core.catalog import load_catalog
from export_engine.core.export_spec import ExportSpec
from export_engine.settings import Settings
from export_engine_tests.helpers import expected_csv

CATALOG = Settings.model_fields["catalog_path"].default

pytestmark = pytest.mark.e2e


def _key(owner: str, date_from: date, date_to: date) -> str:
    """The dedup key the gateway computes for a default CSV export (default columns spelled out)."""
    dataset = load_catalog(CATALOG).get("transactions")
    return ExportSpec.for_dataset(dataset, owner=owner, date_from=date_from, date_to=date_to).dedup_key


def _download(url: str) -> httpx.Response:
    response = httpx.get(url, timeout=60)  # a plain HTTP client: no credentials but the signature
    assert response.status_code == 200, response.text
    return response


def test_export_completes_and_downloads_the_owners_rows(api, settings):
    created = api.post("demo-user-3", table_name="transactions", date_from="2021-01-01", date_to="2021-06-30")
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["status"] == "PENDING" and set(body) >= {"reference_id", "status", "created_at"}

    export = api.wait("demo-user-3", body["reference_id"])
    assert export["status"] == "COMPLETED", export
    assert export["row_count"] > 0 and export["file_size_bytes"] > 0
    assert export["started_at"] and export["completed_at"] and export["expires_at"]

    download = _download(export["download_url"])
    assert download.headers["content-type"].startswith("text/csv")
    assert 'filename="transactions_2021-01-01_2021-06-30.csv"' in download.headers["content-disposition"]
    spec = ExportSpec("transactions", date(2021, 1, 1), date(2021, 6, 30), owner="demo-user-3")
    dataset = load_catalog(settings.catalog_path).get("transactions")
    assert download.content == expected_csv(api.stack.env["SOURCE_ADMIN_URL"], dataset, spec)
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert len(rows) == export["row_count"]
    assert {r["user_id"] for r in rows} == {"demo-user-3"}
    assert len(api.dagster_runs("reference_id", body["reference_id"])) == 1


def test_identical_request_reuses_the_file_without_a_new_run(api):
    params = dict(table_name="transactions", date_from="2020-02-01", date_to="2020-02-29")
    first = api.post("demo-user-4", **params).json()
    original = api.wait("demo-user-4", first["reference_id"])
    assert original["status"] == "COMPLETED"

    again = api.post("demo-user-4", **params)
    assert again.status_code == 200, again.text
    reused = again.json()
    assert reused["status"] == "COMPLETED"
    assert reused["reused_from_ref"] == first["reference_id"]
    assert reused["reference_id"] != first["reference_id"]
    assert api.export_rows(reference_id=reused["reference_id"])[0][2] is None  # no run for the reuse

    view = api.get("demo-user-4", reused["reference_id"]).json()
    assert view["row_count"] == original["row_count"]
    assert _download(view["download_url"]).content == _download(original["download_url"]).content
    dedup_key = _key("demo-user-4", date(2020, 2, 1), date(2020, 2, 29))
    assert len(api.dagster_runs("dedup_key", dedup_key)) == 1


def test_parallel_identical_posts_make_one_export_and_one_run(api):
    params = dict(table_name="transactions", date_from="2019-03-01", date_to="2019-09-30")
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: api.post("demo-user-5", **params), range(20)))
    assert all(r.status_code in (200, 202) for r in responses), [r.text for r in responses]
    assert sum(r.status_code == 202 for r in responses) == 1
    reference_ids = {r.json()["reference_id"] for r in responses}
    assert len(reference_ids) == 1  # every later caller attached to (or reused) the one export
    (reference_id,) = reference_ids
    assert api.wait("demo-user-5", reference_id)["status"] == "COMPLETED"
    dedup_key = _key("demo-user-5", date(2019, 3, 1), date(2019, 9, 30))
    assert len(api.dagster_runs("dedup_key", dedup_key)) == 1


def test_force_refresh_runs_again_and_supersedes_the_old_file(api):
    params = dict(table_name="transactions", date_from="2022-01-01", date_to="2022-01-31")
    old = api.post("demo-user-6", **params).json()
    assert api.wait("demo-user-6", old["reference_id"])["status"] == "COMPLETED"

    fresh = api.post("demo-user-6", force_refresh=True, **params)
    assert fresh.status_code == 202, fresh.text
    assert fresh.json()["reference_id"] != old["reference_id"]
    assert api.wait("demo-user-6", fresh.json()["reference_id"])["status"] == "COMPLETED"
    superseded = api.get("demo-user-6", old["reference_id"]).json()
    assert superseded["status"] == "SUPERSEDED"
    # Its file stays until retention: a SUPERSEDED export is still downloadable (review 2026-12-07 N2).
    assert httpx.get(superseded["download_url"]).status_code == 200

    reuse = api.post("demo-user-6", **params).json()  # later identical requests get the new file
    assert reuse["reused_from_ref"] == fresh.json()["reference_id"]


@pytest.mark.parametrize("days_ago", [0, 1])
def test_ranges_that_are_not_final_are_never_reused(api, days_ago):
    """Today's data is still arriving; yesterday's is inside the 24 h settlement lag (pending → posted)."""
    date_to = datetime.now(UTC).date() - timedelta(days=days_ago)  # the gateway's BUSINESS_TIMEZONE is UTC
    params = dict(table_name="transactions", date_from="2025-01-01", date_to=date_to.isoformat())
    first = api.post("demo-user-8", **params).json()
    assert api.wait("demo-user-8", first["reference_id"])["status"] == "COMPLETED"
    second = api.post("demo-user-8", **params)
    assert second.status_code == 202
    assert second.json()["reference_id"] != first["reference_id"]
    assert api.wait("demo-user-8", second.json()["reference_id"])["status"] == "COMPLETED"


def test_another_user_gets_their_own_export_and_cannot_see_others(api):
    params = dict(table_name="transactions", date_from="2023-05-01", date_to="2023-05-31")
    mine = api.post("demo-user-9", **params).json()
    theirs = api.post("demo-user-10", **params)
    assert theirs.status_code == 202  # same parameters, different owner: not a reuse
    assert theirs.json()["reference_id"] != mine["reference_id"]

    export = api.wait("demo-user-10", theirs.json()["reference_id"])
    rows = list(csv.DictReader(io.StringIO(_download(export["download_url"]).text)))
    assert {r["user_id"] for r in rows} <= {"demo-user-10"}

    peek = api.get("demo-user-10", mine["reference_id"])
    assert peek.status_code == 404
    assert peek.json()["detail"] == f"export '{mine['reference_id']}' not found"
    api.wait("demo-user-9", mine["reference_id"])
