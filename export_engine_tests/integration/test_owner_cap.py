"""The gateway's per-owner cap on exports in flight: 429 past it; attaches never count."""

from __future__ import annotations

import psycopg2
from fastapi.testclient import TestClient

from api.main import create_app
from api.security import issue_token
from devstack.processes import free_port
from export_engine.settings import DEV_JWT_SECRET

OWNER = "cap-owner-1"


def test_an_owner_past_the_cap_gets_429_with_retry_after_and_attaches_still_work(settings):
    capped = settings.model_copy(
        update={
            "owner_active_export_limit": 3,
            "dagster_port": free_port(),  # no Dagster: the exports stay PENDING, as if queued
            "dagster_submit_timeout_seconds": 2,
        }
    )
    headers = {"Authorization": f"Bearer {issue_token(OWNER, secret=DEV_JWT_SECRET)}"}
    months = [("2018-01-01", "2018-01-31"), ("2018-02-01", "2018-02-28"), ("2018-03-01", "2018-03-31")]
    try:
        with TestClient(create_app(capped), raise_server_exceptions=False) as client:
            created = [
                client.post(
                    "/export",
                    json={"table_name": "transactions", "date_from": a, "date_to": b},
                    headers=headers,
                )
                for a, b in months
            ]
            assert [r.status_code for r in created] == [202, 202, 202], [r.text for r in created]

            refused = client.post(
                "/export",
                json={"table_name": "transactions", "date_from": "2018-04-01", "date_to": "2018-04-30"},
                headers=headers,
            )
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "30"
            assert refused.json()["detail"] == (
                "you already have 3 exports PENDING or RUNNING; the limit is 3 per owner "
                "(OWNER_ACTIVE_EXPORT_LIMIT): retry when one has finished"
            )

            attached = client.post(  # the same request as the first: attaches, never counts
                "/export",
                json={"table_name": "transactions", "date_from": "2018-01-01", "date_to": "2018-01-31"},
                headers=headers,
            )
            assert attached.status_code == 200, attached.text
            assert attached.json()["reference_id"] == created[0].json()["reference_id"]

            other = client.post(  # another owner is not affected
                "/export",
                json={"table_name": "transactions", "date_from": "2018-04-01", "date_to": "2018-04-30"},
                headers={"Authorization": f"Bearer {issue_token('cap-owner-2', secret=DEV_JWT_SECRET)}"},
            )
            assert other.status_code == 202, other.text
    finally:  # nothing left PENDING for the orphan sensor of a later end-to-end test
        with psycopg2.connect(settings.database_url) as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE exports SET status = 'CANCELED', error = 'test cleanup'"
                " WHERE owner IN ('cap-owner-1', 'cap-owner-2') AND status = 'PENDING'"
            )
            cur.execute("SELECT count(*) FROM exports WHERE owner = %s", (OWNER,))
            assert cur.fetchone()[0] == 3  # the refused request wrote nothing
