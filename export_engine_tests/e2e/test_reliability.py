"""Faults injected for real: transient and permanent errors, a killed run worker, the deadline."""

from __future__ import annotations

import os
import re
import signal
import time

import dagster as dg
import httpx
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType

from export_engine.runs.reconciler import REPLACES_TAG
from export_engine.runs.resources import S3StorageResource
from export_engine_tests import faults
from export_engine_tests.conftest import EXPORT_MAX_RUNTIME_SECONDS

pytestmark = pytest.mark.e2e


def _attempts(api, reference_id: str) -> int:
    import psycopg2

    with psycopg2.connect(api.stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT attempts FROM exports WHERE reference_id = %s", (reference_id,))
        return cur.fetchone()[0]


def test_transient_errors_are_retried_until_success(api):
    admin = api.stack.env["SOURCE_ADMIN_URL"]
    faults.arm(admin, "flaky", seconds=600)  # serialization_failure until disarmed
    try:
        created = api.post("demo-user-20", table_name="flaky", date_from="2020-01-01", date_to="2020-12-31")
        reference_id = created.json()["reference_id"]
        deadline = time.monotonic() + 180
        while _attempts(api, reference_id) < 2:  # the first attempt failed and a retry began
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        faults.disarm(admin, "flaky")
    export = api.wait("demo-user-20", reference_id)
    assert export["status"] == "COMPLETED", export
    assert 2 <= _attempts(api, reference_id) <= 4
    assert export["row_count"] > 0


def test_transient_errors_fail_with_the_reason_after_three_retries(api):
    faults.arm(api.stack.env["SOURCE_ADMIN_URL"], "flaky", seconds=600)
    try:
        created = api.post("demo-user-21", table_name="flaky", date_from="2020-01-01", date_to="2020-12-31")
        export = api.wait("demo-user-21", created.json()["reference_id"])
    finally:
        faults.disarm(api.stack.env["SOURCE_ADMIN_URL"], "flaky")
    assert export["status"] == "FAILED"
    assert export["error"].startswith("SerializationFailure: injected transient failure (flaky)")
    assert _attempts(api, created.json()["reference_id"]) == 4  # the first try and 3 retries


def test_permanent_errors_fail_at_once(api):
    created = api.post("demo-user-22", table_name="vanished", date_from="2020-01-01", date_to="2020-12-31")
    export = api.wait("demo-user-22", created.json()["reference_id"])
    assert export["status"] == "FAILED"
    assert export["error"] == 'UndefinedTable: relation "vanished_transactions" does not exist'
    assert _attempts(api, created.json()["reference_id"]) == 1


_RUN_TAGS = """query($runId: ID!) { runOrError(runId: $runId) { ... on Run { tags { key value } } } }"""
_RUN_LOGS = """query($runId: ID!) { logsForRun(runId: $runId) {
  ... on EventConnection { events { ... on MessageEvent { message } } } } }"""


def _run_worker_pid(api, run_id: str) -> int | None:
    """The worker announces itself in the run's event log: 'Started process for run (pid: N).'"""
    response = httpx.post(
        f"{api.stack.dagster_url}/graphql",
        json={"query": _RUN_LOGS, "variables": {"runId": run_id}},
        timeout=30,
    )
    for event in response.json()["data"]["logsForRun"]["events"]:
        match = re.search(r"Started process for run \(pid: (\d+)\)", event.get("message") or "")
        if match:
            return int(match.group(1))
    return None


def test_killed_run_worker_is_retried_and_the_export_completes(api, settings):
    with api.streaming_slow_export(date_from="2019-01-01", date_to="2024-12-31") as (reference_id, first_run):
        pid = _run_worker_pid(api, first_run)
        assert pid is not None, "run worker process not found"
        os.kill(pid, signal.SIGKILL)

    export = api.wait("USD", reference_id, timeout=240)
    assert export["status"] == "COMPLETED", export
    assert _attempts(api, reference_id) == 2  # the killed run's attempt, then the retry run's
    runs = api.dagster_runs("reference_id", reference_id)
    assert len(runs) == 2
    final_run = api.export_rows(reference_id=reference_id)[0][2]
    assert final_run != first_run and final_run in {r["runId"] for r in runs}
    storage = S3StorageResource.from_settings(settings)
    assert storage.pending_uploads(prefix="exports/slow/") == []
    listed = storage.client.list_objects_v2(
        Bucket=storage.bucket, Prefix=f"exports/slow/2019-01-01_2024-12-31/{reference_id}"
    )
    # One object, the retry run's own: the killed run never completed one, and nothing else wrote here.
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [
        (f"exports/slow/2019-01-01_2024-12-31/{reference_id}/{final_run}.csv", export["file_size_bytes"])
    ]


def _stack_instance(stack, monkeypatch) -> dg.DagsterInstance:
    """The stack's own Dagster instance (its dagster.yaml reads these variables)."""
    for key, value in stack.env.items():
        if key.startswith(("DAGSTER_PG_", "CELERY_")):
            monkeypatch.setenv(key, value)
    return dg.DagsterInstance.from_config(str(stack.home / "dagster_home"))


def test_a_retry_dagster_promised_and_never_launched_is_submitted_by_the_reconciler(api, monkeypatch):
    """The state Dagster's race leaves (export_engine/runs/reconciler.py): the run FAILED, tagged will_retry=true,
    with no failure event left for Dagster's retry daemon to read. Made here on purpose, then the
    worker is killed as in the test above."""
    with api.streaming_slow_export(date_from="2019-03-01", date_to="2024-12-31") as (reference_id, first_run):
        pid = _run_worker_pid(api, first_run)
        assert pid is not None, "run worker process not found"
        with _stack_instance(api.stack, monkeypatch) as instance:
            run = instance.get_run_by_id(first_run)
            instance.add_run_tags(first_run, {"dagster/will_retry": "true"})
            lost = DagsterEvent(DagsterEventType.RUN_FAILURE.value, run.job_name, message="the worker died")
            instance.run_storage.handle_run_event(first_run, lost)  # the status, without the event
        os.kill(pid, signal.SIGKILL)

    export = api.wait("USD", reference_id, timeout=240)
    assert export["status"] == "COMPLETED", export
    runs = api.dagster_runs("reference_id", reference_id)
    assert len(runs) == 2, runs  # the lost one and the reconciler's, nothing from Dagster's retry daemon
    final_run = api.export_rows(reference_id=reference_id)[0][2]
    assert final_run != first_run
    response = httpx.post(
        f"{api.stack.dagster_url}/graphql",
        json={"query": _RUN_TAGS, "variables": {"runId": final_run}},
        timeout=30,
    )
    tags = {t["key"]: t["value"] for t in response.json()["data"]["runOrError"]["tags"]}
    assert tags[REPLACES_TAG] == first_run


def test_export_past_its_deadline_is_terminated_and_failed(api, settings):
    admin = api.stack.env["SOURCE_ADMIN_URL"]
    faults.arm(admin, "slow", seconds=600)
    try:
        created = api.post("USD", table_name="slow", date_from="2019-01-01", date_to="2030-12-31")
        export = api.wait("USD", created.json()["reference_id"], timeout=EXPORT_MAX_RUNTIME_SECONDS + 240)
    finally:
        faults.disarm(admin, "slow")
    assert export["status"] == "FAILED", export
    assert "maximum runtime" in export["error"], export["error"]
    assert (
        S3StorageResource.from_settings(settings).pending_uploads(
            prefix="exports/slow/2019-01-01_2030-12-31/"
        )
        == []
    )
