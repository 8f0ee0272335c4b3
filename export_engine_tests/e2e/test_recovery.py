"""Exports and packages the gateway accepted but never handed to Dagster are picked up by the orphan sensor."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg2
import pytest
from fastapi.testclient import TestClient
from psycopg2.extras import Json

from api.launcher import DagsterRunLauncher, LaunchError
from api.main import create_app
from export_engine.core.export_spec import ExportSpec
from export_engine.core.package_spec import PackageSpec

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


class _Unreachable:
    """The gateway's real launcher, aimed at a port nothing listens on; records each refused submission."""

    def __init__(self, settings) -> None:
        with socket.socket() as probe:  # a free port, closed again: connections to it are refused
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.launcher = DagsterRunLauncher(
            "127.0.0.1", port, timeout_seconds=5, max_runtime_seconds=settings.export_max_runtime_seconds
        )
        self.refused: list[str] = []

    def submit(self, reference_id: str, spec: ExportSpec | PackageSpec, *, look_first: bool = True) -> str:
        try:
            return self.launcher.submit(reference_id, spec, look_first=look_first)
        except LaunchError as exc:
            self.refused.append(str(exc))
            raise

    def terminate(self, run_id: str) -> None:
        self.launcher.terminate(run_id)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/export", {"table_name": "transactions", "date_from": "2019-10-01", "date_to": "2019-10-31"}),
        (
            "/packages",
            {"datasets": ["transactions", "tags"], "date_from": "2019-10-01", "date_to": "2019-10-31"},
        ),
    ],
)
def test_a_post_while_dagster_is_unreachable_is_answered_and_then_run_by_the_sensor(
    api, settings, path, body
):
    """The POST answers 202 before it submits; the submission after the answer finds Dagster's webserver
    down, so the row stays PENDING without a run until the reconciler submits it (one run, not two)."""
    user = "demo-user-14"
    launcher = _Unreachable(settings)
    with TestClient(create_app(settings, launcher=launcher)) as gateway:  # runs the background task too
        answer = gateway.post(path, json={**body, "force_refresh": True}, headers=api.headers(user))
    assert answer.status_code == 202, answer.text
    reference_id = answer.json()["reference_id"]
    assert answer.json()["status"] == "PENDING"
    assert answer.headers["location"] == f"{path}/{reference_id}"
    assert len(launcher.refused) == 1 and launcher.refused[0].startswith("Dagster is unreachable: ")

    deadline = time.monotonic() + 240  # a bound against a hung run, not a perf check
    while (view := api.http.get(f"{path}/{reference_id}", headers=api.headers(user)).json())["status"] in (
        "PENDING",
        "RUNNING",
    ):
        assert time.monotonic() < deadline, view
        time.sleep(0.5)
    assert view["status"] == "COMPLETED", view
    runs = api.dagster_runs("reference_id", reference_id)
    assert len(runs) == 1
    assert api.export_rows(reference_id=reference_id)[0][2] == runs[0]["runId"]
