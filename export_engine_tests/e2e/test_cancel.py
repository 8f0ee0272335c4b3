"""DELETE /export/{id}: cancel in flight, delete finished files, only for the owner."""

from __future__ import annotations

import httpx
import psycopg2
import pytest

from export_engine.runs.resources import S3StorageResource

pytestmark = pytest.mark.e2e


def test_cancel_a_running_export_terminates_the_run_and_aborts_the_upload(api, settings):
    # The view stays slow until the run has ended: a lost termination cannot hide behind a fast finish.
    with api.streaming_slow_export(date_from="2019-01-01", date_to="2021-12-31") as (reference_id, run_id):
        other = api.http.delete(f"/export/{reference_id}", headers=api.headers("demo-user-1"))
        assert other.status_code == 404
        assert other.json()["detail"] == f"export '{reference_id}' not found"

        canceled = api.http.delete(f"/export/{reference_id}", headers=api.headers("USD"))
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "CANCELED"
        run = api.wait_run_ended(reference_id, run_id)
    assert run["status"] in ("CANCELED", "FAILURE"), run
    assert api.get("USD", reference_id).json()["status"] == "CANCELED"
    storage = S3StorageResource.from_settings(settings)
    assert storage.pending_uploads(prefix="exports/slow/2019-01-01_2021-12-31/") == []
    assert not storage.exists(f"exports/slow/2019-01-01_2021-12-31/{reference_id}.csv")

    again = api.http.delete(f"/export/{reference_id}", headers=api.headers("USD"))
    assert again.status_code == 409
    assert (
        again.json()["detail"] == f"export '{reference_id}' is CANCELED; there is nothing to cancel or delete"
    )


def test_a_run_whose_export_was_canceled_stops_without_being_terminated(api, settings):
    """The owner's DELETE committed but Dagster's termination never arrived: the op stops on its own."""
    with api.streaming_slow_export(date_from="2019-01-01", date_to="2021-06-30") as (reference_id, run_id):
        with psycopg2.connect(api.stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE exports SET status = 'CANCELED', error = 'canceled by its owner' WHERE reference_id = %s",
                (reference_id,),
            )
        run = api.wait_run_ended(reference_id, run_id)
    assert run["status"] == "FAILURE", run
    assert api.get("USD", reference_id).json()["status"] == "CANCELED"
    storage = S3StorageResource.from_settings(settings)
    assert storage.pending_uploads(prefix="exports/slow/2019-01-01_2021-06-30/") == []
    assert not storage.exists(f"exports/slow/2019-01-01_2021-06-30/{reference_id}.csv")
    assert len(api.dagster_runs("reference_id", reference_id)) == 1  # stopped for good, not retried


def test_delete_a_completed_export_removes_its_file(api, settings):
    params = dict(table_name="transactions", date_from="2019-08-01", date_to="2019-08-31")
    created = api.post("demo-user-14", **params).json()
    export = api.wait("demo-user-14", created["reference_id"])
    url = export["download_url"]
    assert httpx.get(url).status_code == 200

    deleted = api.http.delete(f"/export/{created['reference_id']}", headers=api.headers("demo-user-14"))
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "EXPIRED"
    key = f"exports/transactions/2019-08-01_2019-08-31/{created['reference_id']}.csv"
    assert not S3StorageResource.from_settings(settings).exists(key)
    assert httpx.get(url).status_code in (403, 404)  # the old link no longer serves anything
    after = api.post("demo-user-14", **params)
    assert after.status_code == 202  # an expired file is never reused
    api.wait("demo-user-14", after.json()["reference_id"])
