"""Exports the gateway accepted but never handed to Dagster are picked up by the orphan sensor."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg2
import pytest
from psycopg2.extras import Json

from export_engine.request import ExportSpec

pytestmark = pytest.mark.e2e


def test_orphaned_pending_export_is_submitted_once_by_the_sensor(api):
    """As if the gateway died right after committing: a PENDING row with no run."""
    spec = ExportSpec("transactions", date(2019, 11, 1), date(2019, 11, 30), owner="demo-user-13")
    reference_id = str(uuid.uuid4())
    with psycopg2.connect(api.stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO exports (reference_id, dedup_key, owner, table_name, date_from, date_to, format, params,"
            " status, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'PENDING', %s)",
            (
                reference_id,
                spec.dedup_key,
                spec.owner,
                spec.table_name,
                spec.date_from,
                spec.date_to,
                spec.format,
                Json(spec.canonical()),
                datetime.now(UTC) - timedelta(seconds=30),
            ),
        )
    export = api.wait("demo-user-13", reference_id)
    assert export["status"] == "COMPLETED", export
    runs = api.dagster_runs("reference_id", reference_id)
    assert len(runs) == 1
    assert api.export_rows(reference_id=reference_id)[0][2] == runs[0]["runId"]
