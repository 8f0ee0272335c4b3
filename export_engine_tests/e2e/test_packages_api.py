"""Export packages end to end: POST /packages → one Dagster run → one streamed ZIP on S3 → download.

The ZIP is opened with independent readers (Python's `zipfile` with CRC checks, and `unzip -t` when
installed); every manifest entry's SHA-256, byte count and row count is recomputed from the entry, and
every entry is compared byte for byte with what PostgreSQL itself writes for the same query and with
the single-dataset export of the same request.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import tempfile
import time
import zipfile
from datetime import date
from typing import Any

import httpx
import psycopg2
import pytest

from export_engine.core.catalog import load_catalog
from export_engine.core.package_spec import PackageSpec
from export_engine.db.session import session_factory
from export_engine.lifecycle.retention import expire_exports
from export_engine.runs.resources import S3StorageResource
from export_engine_tests import faults, required_tools
from export_engine_tests.e2e.test_reliability import _attempts, _run_worker_pid
from export_engine_tests.helpers import expected_csv

pytestmark = pytest.mark.e2e

ALL = ["accounts", "daily_spending_by_tag", "monthly_trends", "tags", "transactions"]
ACTIVE = {"PENDING", "RUNNING"}


def _post(api, user: str, **body: Any) -> httpx.Response:
    return api.http.post("/packages", json=body, headers=api.headers(user))


def _get(api, user: str, reference_id: str) -> httpx.Response:
    return api.http.get(f"/packages/{reference_id}", headers=api.headers(user))


def _wait(api, user: str, reference_id: str, timeout: float = 240) -> dict[str, Any]:
    """Poll until the package leaves PENDING/RUNNING (a bound against a hung run, not a perf check)."""
    deadline = time.monotonic() + timeout
    while True:
        package = _get(api, user, reference_id).json()
        if package["status"] not in ACTIVE:
            return package
        if time.monotonic() > deadline:
            raise AssertionError(f"package {reference_id} still {package['status']} after {timeout}s")
        time.sleep(0.5)


def _wait_streaming(api, user: str, reference_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        package = _get(api, user, reference_id).json()
        if package["status"] == "RUNNING" and package.get("rows_written", 0) > 0:
            return package
        if time.monotonic() > deadline:
            raise AssertionError(f"package {reference_id} not streaming after {timeout}s: {package}")
        time.sleep(0.5)


def _wait_until(condition, message: str, timeout: float = 60) -> None:
    """An eventual state (a bound against a hang, not a perf check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.5)


def _download(api, user: str, reference_id: str) -> bytes:
    redirect = api.http.get(f"/packages/{reference_id}/download", headers=api.headers(user))
    assert redirect.status_code == 302, redirect.text
    response = httpx.get(redirect.headers["location"], timeout=60)  # only the signature: no token
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    return response.content


def _checked_zip(content: bytes) -> tuple[zipfile.ZipFile, dict[str, Any]]:
    """Open with two independent readers and verify every manifest entry against its bytes."""
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None  # every entry's CRC-32
    if required_tools.have("unzip", "apt-get install -y unzip"):  # Info-ZIP: a reader of its own (seekable)
        with tempfile.NamedTemporaryFile(suffix=".zip") as copy:
            copy.write(content)
            copy.flush()
            tested = subprocess.run(["unzip", "-t", copy.name], capture_output=True, text=True, check=False)
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert "No errors detected" in tested.stdout
    names = archive.namelist()
    assert names[-1] == "manifest.json"
    manifest = json.loads(archive.read("manifest.json"))
    assert [f["path"] for f in manifest["files"]] == names[:-1]
    for entry in manifest["files"]:
        data = archive.read(entry["path"])
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
        assert len(data) == entry["bytes"], entry["path"]
    return archive, manifest


def _csv_rows(data: bytes) -> int:
    return len(list(csv.reader(io.StringIO(data.decode())))) - 1


def test_package_completes_and_every_entry_matches_its_manifest_and_the_single_export(api, settings):
    user, body = "demo-user-7", {"datasets": ALL, "date_from": "2021-01-01", "date_to": "2021-12-31"}
    created = _post(api, user, **body)
    assert created.status_code == 202, created.text
    reference_id = created.json()["reference_id"]
    assert created.headers["location"] == f"/packages/{reference_id}"
    assert created.json()["status_url"] == f"/packages/{reference_id}"

    package = _wait(api, user, reference_id)
    assert package["status"] == "COMPLETED", package
    assert package["download_url"] and package["expires_at"]
    assert [p["dataset"] for p in package["parts"]] == ALL
    assert all(p["status"] == "COMPLETED" and p["sha256"] for p in package["parts"])
    assert package["row_count"] == sum(p["rows"] for p in package["parts"]) > 0
    assert len(api.dagster_runs("reference_id", reference_id)) == 1  # one run for the whole package

    content = _download(api, user, reference_id)
    assert len(content) == package["file_size_bytes"]
    archive, manifest = _checked_zip(content)
    assert manifest["package_id"] == reference_id and manifest["owner"] == user
    assert manifest["request"] == {**body, "format": "csv"}
    assert manifest["engine_version"] and manifest["created_at"]

    catalog = load_catalog(settings.catalog_path)
    spec = PackageSpec.for_request(
        catalog, owner=user, datasets=ALL, date_from=date(2021, 1, 1), date_to=date(2021, 12, 31)
    )
    admin = api.stack.env["SOURCE_ADMIN_URL"]
    by_path = {f["path"]: f for f in manifest["files"]}
    for (dataset, entry_spec), part in zip(spec.entries(catalog), package["parts"], strict=True):
        entry = by_path[f"{dataset.id}.csv"]
        data = archive.read(entry["path"])
        assert data == expected_csv(admin, dataset, entry_spec), dataset.id  # PostgreSQL's own COPY
        assert entry["rows"] == _csv_rows(data) == part["rows"], dataset.id
        assert entry["sha256"] == part["sha256"]
        assert entry["columns"] == [{"name": n, "type": t} for n, t in dataset.columns.items()]
        assert entry["filters"][dataset.owner_column] == user
    # Entities come whole (every account up to date_to); dated datasets only within the range.
    assert by_path["accounts.csv"]["filters"]["opened_on"] == {"from": "1900-01-01", "to": "2021-12-31"}
    assert by_path["transactions.csv"]["filters"]["txn_date"] == {"from": "2021-01-01", "to": "2021-12-31"}
    assert by_path["accounts.csv"]["rows"] >= 1 and by_path["tags.csv"]["rows"] >= 1

    single = api.post(user, table_name="transactions", date_from="2021-01-01", date_to="2021-12-31")
    export = api.wait(user, single.json()["reference_id"])
    assert httpx.get(export["download_url"], timeout=60).content == archive.read("transactions.csv")


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_package_in_other_formats(api, fmt):
    user = "demo-user-8"
    created = _post(api, user, datasets=["transactions", "accounts"], date_from="2020-01-01", format=fmt)
    assert created.status_code == 202, created.text
    package = _wait(api, user, created.json()["reference_id"])
    assert package["status"] == "COMPLETED", package
    assert package["datasets"] == ["accounts", "transactions"]  # canonical order
    archive, manifest = _checked_zip(_download(api, user, package["reference_id"]))
    assert [f["path"] for f in manifest["files"]] == [f"accounts.{fmt}", f"transactions.{fmt}"]
    for entry in manifest["files"]:
        data = archive.read(entry["path"])
        if fmt == "jsonl":
            lines = data.decode().splitlines()
            assert len(lines) == entry["rows"] and all(json.loads(line)["user_id"] == user for line in lines)
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(data))
            assert table.num_rows == entry["rows"] and set(table.column("user_id").to_pylist()) == {user}


def test_identical_package_reuses_its_zip_without_a_new_run(api):
    user = "demo-user-9"
    body = {"datasets": ["transactions", "tags"], "date_from": "2020-03-01", "date_to": "2020-03-31"}
    first = _post(api, user, **body).json()
    original = _wait(api, user, first["reference_id"])
    assert original["status"] == "COMPLETED"

    again = _post(api, user, **{**body, "datasets": ["tags", "transactions"]})  # order does not matter
    assert again.status_code == 200, again.text
    reused = again.json()
    assert reused["status"] == "COMPLETED" and reused["reused_from_ref"] == first["reference_id"]
    assert reused["download_url"] and reused["expires_at"]
    view = _get(api, user, reused["reference_id"]).json()
    assert view["parts"] == original["parts"] and view["row_count"] == original["row_count"]
    assert _download(api, user, reused["reference_id"]) == _download(api, user, first["reference_id"])
    assert len(api.dagster_runs("reference_id", first["reference_id"])) == 1
    assert api.dagster_runs("reference_id", reused["reference_id"]) == []

    forced = _post(api, user, **body, force_refresh=True)
    assert forced.status_code == 202 and forced.json()["reference_id"] != first["reference_id"]
    assert _wait(api, user, forced.json()["reference_id"])["status"] == "COMPLETED"


def test_packages_are_owner_scoped_and_apart_from_exports(api):
    owner, other = "demo-user-10", "demo-user-11"
    created = _post(api, owner, datasets=["accounts"], date_from="2019-01-01", date_to="2019-12-31")
    reference_id = created.json()["reference_id"]
    assert _wait(api, owner, reference_id)["status"] == "COMPLETED"
    not_found = {"detail": f"package '{reference_id}' not found", "errors": []}
    for method, path in (
        ("GET", f"/packages/{reference_id}"),
        ("GET", f"/packages/{reference_id}/download"),
        ("DELETE", f"/packages/{reference_id}"),
    ):
        answer = api.http.request(method, path, headers=api.headers(other))
        assert (answer.status_code, answer.json()) == (404, not_found), (method, path)
    as_export = api.http.get(f"/export/{reference_id}", headers=api.headers(owner))
    assert as_export.status_code == 404
    assert as_export.json()["detail"] == f"export '{reference_id}' not found"

    mine = api.http.get("/packages", params={"limit": 1}, headers=api.headers(owner)).json()
    assert [p["reference_id"] for p in mine["items"]] == [reference_id]
    theirs = api.http.get("/packages", headers=api.headers(other)).json()
    assert reference_id not in {p["reference_id"] for p in theirs["items"]}
    exports = api.http.get("/export", params={"limit": 100}, headers=api.headers(owner)).json()
    assert reference_id not in {e["reference_id"] for e in exports["items"]}


def test_package_list_pages_with_a_cursor(api):
    user = "demo-user-12"
    ids = [
        _post(api, user, datasets=["tags"], date_from=f"2019-0{m}-01", date_to=f"2019-0{m}-28").json()[
            "reference_id"
        ]
        for m in (1, 2, 3)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.http.get("/packages", params=params, headers=api.headers(user)).json()
        seen += [p["reference_id"] for p in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert seen == list(reversed(ids))
    for reference_id in ids:
        _wait(api, user, reference_id)


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        (
            {"datasets": ["accounts", "nope"]},
            "datasets",
            "datasets: unknown dataset 'nope'; valid names: ",
        ),
        ({"datasets": []}, "datasets", "datasets: the list is empty; omit it for every dataset"),
        ({"datasets": ["tags", "tags"]}, "datasets", "datasets: 'tags' is listed more than once"),
        ({"format": "xlsx"}, "format", None),
        ({"date_from": "2024-02-01", "date_to": "2024-01-01"}, "date_to", None),
        ({"date_from": "2024-02-30"}, "date_from", None),
        ({"tables": ["accounts"]}, "tables", None),
    ],
)
def test_invalid_package_requests_are_refused_with_the_export_error_body(api, body, field, detail):
    before = api.export_count()
    answer = _post(api, "demo-user-13", **body)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert set(error) == {"detail", "errors"}
    assert [e["field"] for e in error["errors"]] == [field], error
    if detail is not None:
        assert error["detail"].startswith(detail), error
    assert api.export_count() == before  # nothing was written


def test_delete_a_completed_package_removes_its_zip(api, settings):
    user = "demo-user-14"
    created = _post(api, user, datasets=["monthly_trends"], date_from="2022-01-01", date_to="2022-12-31")
    reference_id = created.json()["reference_id"]
    package = _wait(api, user, reference_id)
    url = package["download_url"]
    assert httpx.get(url).status_code == 200

    deleted = api.http.delete(f"/packages/{reference_id}", headers=api.headers(user))
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "EXPIRED"
    gone = api.http.get(f"/packages/{reference_id}/download", headers=api.headers(user))
    assert gone.status_code == 410
    assert gone.json()["detail"].startswith(f"the file of package '{reference_id}' was deleted")
    assert httpx.get(url).status_code in (403, 404)
    again = api.http.delete(f"/packages/{reference_id}", headers=api.headers(user))
    assert again.status_code == 409
    assert (
        again.json()["detail"] == f"package '{reference_id}' is EXPIRED; there is nothing to cancel or delete"
    )


def test_retention_expires_a_package_like_an_export(api, settings):
    user = "demo-user-15"
    created = _post(api, user, datasets=["accounts", "tags"], date_from="2023-01-01", date_to="2023-01-31")
    reference_id = created.json()["reference_id"]
    assert _wait(api, user, reference_id)["status"] == "COMPLETED"
    with psycopg2.connect(api.stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE exports SET object_expires_at = now() - interval '1 minute' WHERE reference_id = %s "
            "RETURNING s3_key",
            (reference_id,),
        )
        (s3_key,) = cur.fetchone()
    storage = S3StorageResource.from_settings(settings)
    assert storage.exists(s3_key)
    result = expire_exports(session_factory(settings.database_url), storage)
    assert result.exports_expired >= 1
    assert _get(api, user, reference_id).json()["status"] == "EXPIRED"
    assert not storage.exists(s3_key)
    assert api.http.get(f"/packages/{reference_id}/download", headers=api.headers(user)).status_code == 410


def test_cancel_a_running_package_stops_its_run_and_aborts_the_upload(api, settings):
    admin = api.stack.env["SOURCE_ADMIN_URL"]
    faults.arm(admin, "slow", seconds=300)
    try:
        created = _post(api, "USD", datasets=["slow"], date_from="2019-01-01", date_to="2021-12-31")
        reference_id = created.json()["reference_id"]
        running = _wait_streaming(api, "USD", reference_id)
        assert running["parts"][0]["status"] == "RUNNING" and running["parts"][0]["rows"] > 0
        canceled = api.http.delete(f"/packages/{reference_id}", headers=api.headers("USD"))
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "CANCELED"
        run_id = api.export_rows(reference_id=reference_id)[0][2]
        run = api.wait_run_ended(reference_id, run_id)
    finally:
        faults.disarm(admin, "slow")
    assert run["status"] in ("CANCELED", "FAILURE"), run
    assert _get(api, "USD", reference_id).json()["status"] == "CANCELED"
    storage = S3StorageResource.from_settings(settings)
    prefix = f"exports/package/2019-01-01_2021-12-31/{reference_id}/"
    # Dagster marks a terminated run CANCELED at once; its op aborts the upload as it unwinds, a moment later.
    _wait_until(lambda: storage.pending_uploads(prefix=prefix) == [], "the upload was never aborted")
    assert list(storage.objects(prefix)) == []


def test_killed_run_worker_is_retried_and_the_package_completes(api, settings):
    admin = api.stack.env["SOURCE_ADMIN_URL"]
    faults.arm(admin, "slow", seconds=300)
    try:
        created = _post(api, "USD", datasets=["slow"], date_from="2019-01-01", date_to="2024-12-31")
        reference_id = created.json()["reference_id"]
        _wait_streaming(api, "USD", reference_id)
        first_run = api.export_rows(reference_id=reference_id)[0][2]
        pid = _run_worker_pid(api, first_run)
        assert pid is not None, "run worker process not found"
        os.kill(pid, signal.SIGKILL)
    finally:
        faults.disarm(admin, "slow")

    package = _wait(api, "USD", reference_id, timeout=240)
    assert package["status"] == "COMPLETED", package
    assert _attempts(api, reference_id) == 2
    final_run = api.export_rows(reference_id=reference_id)[0][2]
    assert final_run != first_run
    storage = S3StorageResource.from_settings(settings)
    prefix = f"exports/package/2019-01-01_2024-12-31/{reference_id}/"
    assert storage.pending_uploads(prefix=prefix) == []
    assert [o["Key"] for o in storage.objects(prefix)] == [f"{prefix}{final_run}.zip"]
    _, manifest = _checked_zip(_download(api, "USD", reference_id))
    assert manifest["files"][0]["rows"] == package["row_count"] > 0


def test_dates_default_to_the_owners_first_date_and_today(api):
    user = "demo-user-16"
    with psycopg2.connect(api.stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT min(txn_date), current_date FROM transactions WHERE user_id = %s", (user,))
        first, today = cur.fetchone()
    created = _post(api, user, datasets=["transactions", "accounts"])
    assert created.status_code == 202, created.text
    package = _wait(api, user, created.json()["reference_id"])
    assert (package["date_from"], package["date_to"]) == (first.isoformat(), today.isoformat())
    assert package["status"] == "COMPLETED", package
    transactions = next(p for p in package["parts"] if p["dataset"] == "transactions")
    with psycopg2.connect(api.stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM transactions WHERE user_id = %s AND txn_date <= %s", (user, today))
        assert transactions["rows"] == cur.fetchone()[0]
