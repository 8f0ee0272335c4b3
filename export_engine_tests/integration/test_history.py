"""History stays bounded: real Dagster runs (PostgreSQL storage) are deleted through `delete_run` once
their export has nothing left to serve, and export rows past the audit window are purged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import dagster as dg
import pytest
from sqlalchemy import func, select, update

from export_engine.core.catalog import load_catalog
from export_engine.core.export_spec import ExportSpec
from export_engine.db import events
from export_engine.db.models import Export, ExportEvent
from export_engine.db.session import session_factory
from export_engine.lifecycle.history import purge_exports
from export_engine.runs.history import CURSOR_KEY, forget_runs
from export_engine_tests.helpers import export_row

pytestmark = pytest.mark.integration


@dg.op
def _work() -> None:
    pass


@dg.op
def _broken() -> None:
    raise RuntimeError("boom")


@dg.job(name="export_job")  # the name the sweep knows an export's run by
def _export_job() -> None:
    _work()


@dg.job(name="export_job_failing")
def _failing_job() -> None:
    _broken()


@dg.job(name="retention_job")
def _housekeeping_job() -> None:
    _work()


@pytest.fixture
def instance(stack) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance on its own PostgreSQL database, so the e2e stack's runs are never swept."""
    url = urlsplit(stack.postgres.ensure_database(f"dagster_history_{uuid.uuid4().hex[:8]}"))
    db = {
        "hostname": url.hostname,
        "port": url.port,
        "username": url.username,
        "password": url.password or "",
        "db_name": url.path.lstrip("/"),
        "scheme": "postgresql+psycopg2",
    }
    overrides = {
        "storage": {"postgres": {"postgres_db": db}},
        "telemetry": {"enabled": False},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        yield instance


def _spec(settings) -> ExportSpec:
    dataset = load_catalog(settings.catalog_path).get("transactions")
    return ExportSpec.for_dataset(
        dataset, owner="history-owner", date_from=date(2024, 1, 1), date_to=date(2024, 1, 31), format="csv"
    )


def _run(instance, job, reference_id: str | None = None) -> str:
    tags = {"reference_id": reference_id} if reference_id else {}
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    return result.run_id


def test_runs_go_once_their_export_has_nothing_left_to_serve(instance, settings):
    sessions = session_factory(settings.database_url)
    spec = _spec(settings)
    refs = {status: str(uuid.uuid4()) for status in ("COMPLETED", "EXPIRED", "CANCELED", "FAILED", "RUNNING")}
    with sessions.begin() as session:
        for status, reference_id in refs.items():
            extra = {"s3_key": f"exports/x/{reference_id}.csv"} if status in ("COMPLETED", "EXPIRED") else {}
            session.add(export_row(spec, reference_id, status=status, **extra))
    runs = {status: _run(instance, _export_job, reference_id) for status, reference_id in refs.items()}
    runs["purged"] = _run(instance, _export_job, str(uuid.uuid4()))  # its export row is gone
    runs["failed_run"] = _run(instance, _failing_job)
    runs["housekeeping"] = _run(instance, _housekeeping_job)
    assert instance.get_run_by_id(runs["failed_run"]).status == dg.DagsterRunStatus.FAILURE

    # Just ended: nothing goes (the reconciler may still be reading them).
    assert forget_runs(instance, sessions, settings).runs_deleted == 0

    two_days = datetime.now(UTC) + timedelta(days=2)
    result = forget_runs(instance, sessions, settings, now=two_days)
    left = {name for name, run_id in runs.items() if instance.get_run_by_id(run_id) is not None}
    # EXPIRED, CANCELED and purged exports' runs are gone; a live file's, a running export's and a
    # FAILED export's runs (kept 30 days) stay, and so do housekeeping runs (kept 7 days).
    assert left == {"COMPLETED", "RUNNING", "FAILED", "failed_run", "housekeeping"}
    assert result.runs_deleted == 3
    assert instance.get_records_for_run(runs["EXPIRED"]).records == []  # its event log went with it

    later = datetime.now(UTC) + timedelta(days=settings.failed_run_history_days + 1)
    forget_runs(instance, sessions, settings, now=later)
    left = {name for name, run_id in runs.items() if instance.get_run_by_id(run_id) is not None}
    assert left == {"COMPLETED", "RUNNING"}


def test_the_sweep_resumes_from_its_cursor_and_starts_over_at_the_newest_run(instance, settings):
    sessions = session_factory(settings.database_url)
    kept = [_run(instance, _export_job, None) for _ in range(3)]  # no reference_id: housekeeping-like
    now = datetime.now(UTC) + timedelta(days=1)  # past the minimum age, inside the 7 days
    result = forget_runs(instance, sessions, settings, now=now, page=2, max_pages=1)
    assert (result.runs_scanned, result.runs_deleted) == (2, 0)
    assert instance.run_storage.get_cursor_values({CURSOR_KEY})[CURSOR_KEY] == kept[1]
    result = forget_runs(instance, sessions, settings, now=now, page=2, max_pages=1)
    assert (result.runs_scanned, result.runs_deleted) == (1, 0)  # the third one, then back to the start
    assert instance.run_storage.get_cursor_values({CURSOR_KEY})[CURSOR_KEY] == ""


def test_export_rows_past_the_audit_window_are_purged_with_their_events(settings):
    sessions = session_factory(settings.database_url)
    spec = _spec(settings)
    old = {status: str(uuid.uuid4()) for status in ("EXPIRED", "CANCELED", "FAILED", "COMPLETED")}
    recent = str(uuid.uuid4())
    with sessions.begin() as session:
        for status, reference_id in [*old.items(), ("EXPIRED", recent)]:
            extra = {"s3_key": f"exports/x/{reference_id}.csv"} if status in ("COMPLETED", "EXPIRED") else {}
            export = export_row(spec, reference_id, status=status, **extra)
            session.add(export)
            session.flush()
            events.append(session, export, events.EXPORT_CREATED)
        session.execute(
            update(Export)
            .where(Export.reference_id.in_(old.values()))
            .values(created_at=func.now() - timedelta(days=91))
        )
    audit = timedelta(days=settings.export_audit_days)
    while purge_exports(sessions, audit=audit, batch=2):
        pass
    with sessions() as session:
        rows = set(session.scalars(select(Export.reference_id).where(Export.owner == spec.owner)))
        with_events = set(
            session.scalars(select(ExportEvent.reference_id).where(ExportEvent.owner == spec.owner))
        )
    assert old["COMPLETED"] in rows and recent in rows  # a live file, and a row inside the window
    assert not {old["EXPIRED"], old["CANCELED"], old["FAILED"]} & rows
    assert not {old["EXPIRED"], old["CANCELED"], old["FAILED"]} & with_events
    assert recent in with_events
