"""The reconciler, one case per row of its table: a real Dagster instance (runs created in each state),
the real export DB and S3, evaluated through Dagster's own sensor context."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.storage.runs.schema import RunsTable
from sqlalchemy import delete, text

from export_engine.core.export_spec import ExportSpec
from export_engine.db.models import Export
from export_engine.db.session import session_factory
from export_engine.lifecycle import creation
from export_engine.runs import reconciler
from export_engine.runs.export_job import export_job
from export_engine.runs.reconciler import export_reconciler_sensor
from export_engine.runs.resources import ExportDbResource
from export_engine.runs.submission import run_config_for
from export_engine.settings import get_settings
from export_engine_tests.helpers import export_row


@pytest.fixture
def env(settings, stack, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SOURCE_DATABASE_URL", stack.env["SOURCE_DATABASE_URL"])
    monkeypatch.setenv("HEARTBEAT_TIMEOUT_SECONDS", "30")
    monkeypatch.setenv("EXPORT_QUEUE_TIMEOUT_SECONDS", "600")
    monkeypatch.setenv("RUN_RETRY_GRACE_SECONDS", "60")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def instance():
    # dagster.yaml's retry budget; retries stay disabled so each test sets the will_retry tag itself.
    with dg.instance_for_test(
        overrides={"run_retries": {"enabled": False, "max_retries": 3}}
    ) as test_instance:
        yield test_instance


@pytest.fixture
def sessions(settings):
    return session_factory(settings.database_url)


def _export(
    sessions, *, status: str, run_id: str | None, age_s: int = 0, silence_s: int | None = None
) -> str:
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2019, 1, 31), owner=f"reconcile-{uuid.uuid4()}")
    ref = str(uuid.uuid4())
    with sessions.begin() as s:
        s.add(export_row(spec, ref, status=status, dagster_run_id=run_id))
        s.flush()
        s.execute(
            text(
                "UPDATE exports SET created_at = now() - make_interval(secs => :age), "
                "heartbeat_at = CASE WHEN CAST(:silence AS int) IS NULL THEN NULL "
                "ELSE now() - make_interval(secs => CAST(:silence AS int)) END WHERE reference_id = :ref"
            ),
            {"age": age_s, "silence": silence_s, "ref": ref},
        )
    return ref


def _held_by(sessions, ref: str, run: dg.DagsterRun) -> None:
    """The export remembers `run` as its run, as the gateway does after submitting it."""
    with sessions.begin() as s:
        assert creation.record_run(s, ref, run.run_id)


def _run(instance, ref: str, status: dg.DagsterRunStatus, **tags: str) -> dg.DagsterRun:
    """A run in `status` (NOT_STARTED stands in for QUEUED, which needs a code location's origin)."""
    return instance.create_run_for_job(
        export_job, run_config=run_config_for(ref), status=status, tags={"reference_id": ref, **tags}
    )


def _watching(seconds: float, *, last_tick_ago: float = 5) -> str:
    """The cursor of a reconciler that has ticked without a gap for `seconds` (its last tick just now)."""
    now = time.time()
    return json.dumps({"page": None, "watching_since": now - seconds, "seen_at": now - last_tick_ago})


def _tick(instance, settings, storage, watching: tuple[float, float] | None = (3600, 5)):
    """One evaluation; by default of a reconciler that has been watching for an hour, its last tick
    5 s ago (N5). `watching=None`: its first tick."""
    context = dg.build_sensor_context(
        instance=instance,
        cursor=_watching(watching[0], last_tick_ago=watching[1]) if watching else None,
        resources={"export_db": ExportDbResource(url=settings.database_url), "storage": storage},
    )
    result = export_reconciler_sensor(context)
    return result if isinstance(result, list) else []


def _grace_over(monkeypatch) -> None:
    """As if RUN_RETRY_GRACE_SECONDS had passed since every failure (the setting's floor is 5 s)."""
    over = get_settings().model_copy(update={"run_retry_grace_seconds": 0})
    monkeypatch.setattr(reconciler, "get_settings", lambda: over)


def _requests_for(ref: str, requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
    """The tick's run requests for one export (other tests' exports share the database)."""
    return [r for r in requests if r.tags.get("reference_id") == ref]


def _row(sessions, ref: str) -> Export:
    with sessions() as s:
        return s.get(Export, ref)


def test_an_export_without_a_run_is_submitted_once_or_adopts_a_tagged_run(
    env, instance, settings, storage, sessions
):
    young = _export(sessions, status="PENDING", run_id=None, age_s=1)
    orphan = _export(sessions, status="PENDING", run_id=None, age_s=30)
    adopted = _export(sessions, status="PENDING", run_id=None, age_s=30)
    tagged = _run(instance, adopted, dg.DagsterRunStatus.NOT_STARTED)

    requests = _tick(instance, settings, storage)

    keys = {r.run_key for r in requests}
    assert orphan in keys and young not in keys and adopted not in keys
    (request,) = [r for r in requests if r.run_key == orphan]
    assert request.run_config == run_config_for(orphan)  # only the reference id
    assert request.tags["reference_id"] == orphan
    assert _row(sessions, adopted).dagster_run_id == tagged.run_id


def test_an_export_whose_run_was_deleted_fails_with_that_reason(env, instance, settings, storage, sessions):
    ref = _export(sessions, status="RUNNING", run_id=str(uuid.uuid4()), silence_s=1)
    _tick(instance, settings, storage)
    row = _row(sessions, ref)
    assert row.status == "FAILED" and "no longer exists" in row.error, row.error


def test_a_run_queued_past_the_deadline_fails_its_export_and_is_canceled(
    env, instance, settings, storage, sessions
):
    ref = _export(sessions, status="PENDING", run_id=None, age_s=601)
    run = _run(instance, ref, dg.DagsterRunStatus.NOT_STARTED)
    _queued_for(instance, run, 601)  # the deadline is the run's time in the queue (N5), not the export's age
    _held_by(sessions, ref, run)
    fresh = _export(sessions, status="PENDING", run_id=None, age_s=5)
    fresh_run = _run(instance, fresh, dg.DagsterRunStatus.NOT_STARTED)
    _held_by(sessions, fresh, fresh_run)

    _tick(instance, settings, storage)

    row = _row(sessions, ref)
    assert row.status == "FAILED" and "waited in Dagster's queue for more than 600 s" in row.error
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
    assert _row(sessions, fresh).status == "PENDING"  # queued briefly: left alone


def test_a_silent_run_is_reported_failed_so_run_retries_take_over(env, instance, settings, storage, sessions):
    ref = _export(sessions, status="RUNNING", run_id=None, silence_s=45)
    run = _run(instance, ref, dg.DagsterRunStatus.STARTED)
    alive_ref = _export(sessions, status="RUNNING", run_id=None, silence_s=2)
    alive = _run(instance, alive_ref, dg.DagsterRunStatus.STARTED)
    _held_by(sessions, ref, run)
    _held_by(sessions, alive_ref, alive)

    _tick(instance, settings, storage)

    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert _row(sessions, ref).status == "RUNNING"  # the retry run takes it over (fenced by run id)
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED


def test_a_run_that_ended_without_finishing_fails_the_export_with_its_message(
    env, instance, settings, storage, sessions
):
    ref = _export(sessions, status="RUNNING", run_id=None, silence_s=1)
    run = _run(
        instance, ref, dg.DagsterRunStatus.STARTED, **{"dagster/will_retry": "false"}
    )  # no retries left
    _held_by(sessions, ref, run)
    instance.report_run_failed(instance.get_run_by_id(run.run_id), "worker process exited with code -9")

    _tick(instance, settings, storage)

    row = _row(sessions, ref)
    assert row.status == "FAILED" and "worker process exited with code -9" in row.error, row.error


def _lost_retry(instance, ref: str, sessions) -> dg.DagsterRun:
    """What Dagster's race leaves: a failed run tagged will_retry=true that its retry daemon skipped."""
    run = _run(instance, ref, dg.DagsterRunStatus.STARTED, **{"dagster/will_retry": "true"})
    _held_by(sessions, ref, run)
    instance.report_run_failed(instance.get_run_by_id(run.run_id), "lost the worker")
    return run


def test_a_promised_retry_is_waited_for_then_submitted_in_its_place(
    env, instance, settings, storage, sessions, monkeypatch
):
    ref = _export(sessions, status="RUNNING", run_id=None, silence_s=1)
    failed = _lost_retry(instance, ref, sessions)

    assert _requests_for(ref, _tick(instance, settings, storage)) == []  # Dagster's retry may still come
    assert _row(sessions, ref).status == "RUNNING"

    _grace_over(monkeypatch)
    [request] = _requests_for(ref, _tick(instance, settings, storage))
    assert request.run_key == f"{ref}:after:{failed.run_id}"
    assert request.tags["reference_id"] == ref and request.tags[reconciler.REPLACES_TAG] == failed.run_id
    assert request.run_config == run_config_for(ref)
    assert _row(sessions, ref).status == "RUNNING"  # the new run takes it over from the failed holder


def test_a_lost_retry_past_the_retry_budget_fails_the_export(
    env, instance, settings, storage, sessions, monkeypatch
):
    ref = _export(sessions, status="RUNNING", run_id=None, silence_s=1)
    for _ in range(instance.run_retries_max_retries):
        _run(instance, ref, dg.DagsterRunStatus.FAILURE)
    _lost_retry(instance, ref, sessions)
    _grace_over(monkeypatch)

    assert _requests_for(ref, _tick(instance, settings, storage)) == []

    row = _row(sessions, ref)
    assert (row.status, row.error) == ("FAILED", "its run failed 4 times: lost the worker")


def test_a_retry_that_ended_without_taking_the_export_over_fails_it_with_its_message(
    env, instance, settings, storage, sessions
):
    ref = _export(sessions, status="RUNNING", run_id=None, silence_s=1)
    _held_by(
        sessions, ref, _run(instance, ref, dg.DagsterRunStatus.FAILURE, **{"dagster/will_retry": "true"})
    )
    retry = _run(instance, ref, dg.DagsterRunStatus.STARTED, **{"dagster/will_retry": "false"})
    instance.report_run_failed(instance.get_run_by_id(retry.run_id), "could not reach the source database")

    _tick(instance, settings, storage)

    row = _row(sessions, ref)
    assert (row.status, row.error) == ("FAILED", "could not reach the source database")


def test_a_newer_live_run_of_the_export_is_left_to_take_it_over(env, instance, settings, storage, sessions):
    ref = _export(sessions, status="RUNNING", run_id=None, silence_s=1)
    old = _run(instance, ref, dg.DagsterRunStatus.FAILURE)
    _run(instance, ref, dg.DagsterRunStatus.STARTING)
    _held_by(sessions, ref, old)

    _tick(instance, settings, storage)

    assert _row(sessions, ref).status == "RUNNING"


# -- review 2026-12-07 N5: the queue deadline counts the run's own time in the queue ---------------
def _queued_for(instance, run: dg.DagsterRun, seconds: int) -> None:
    """As if `run` had been created `seconds` ago (the run storage dates it; its clock is UTC)."""
    with instance.run_storage.connect() as conn:
        conn.execute(
            RunsTable.update()
            .where(RunsTable.c.run_id == run.run_id)
            .values(create_timestamp=datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=seconds))
        )


def test_an_old_export_whose_run_was_queued_only_now_is_left_in_the_queue(
    env, instance, settings, storage, sessions
):
    """After a daemon outage longer than the deadline, the backlog's runs start within seconds: the
    export's own age (3 h) is not its run's time in the queue."""
    ref = _export(sessions, status="PENDING", run_id=None, age_s=3 * 3600)
    run = _run(instance, ref, dg.DagsterRunStatus.NOT_STARTED)
    _held_by(sessions, ref, run)

    _tick(instance, settings, storage)

    assert _row(sessions, ref).status == "PENDING"
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.NOT_STARTED


@pytest.mark.parametrize(
    ("watching", "times_out"),
    [
        (None, False),  # the first tick after the daemon came back (or after a deploy)
        ((30, 5), False),  # watching for 30 s: the backlog has its full deadline
        ((5000, 300), False),  # a 5-minute gap in the ticks: an outage
        ((601, 5), True),  # watched it wait past the deadline
    ],
    ids=["first-tick", "watching-30s", "after-a-gap", "watched-601s"],
)
def test_a_backlog_queued_while_the_daemon_was_down_gets_a_full_deadline(
    env, instance, settings, storage, sessions, watching, times_out
):
    """Review 2026-12-07 N5: the queue coordinator and the reconciler run in the same daemon. A run
    queued 3 h ago during its outage starts within seconds of its return; only time the reconciler
    watched counts."""
    ref = _export(sessions, status="PENDING", run_id=None, age_s=3 * 3600)
    run = _run(instance, ref, dg.DagsterRunStatus.NOT_STARTED)
    _queued_for(instance, run, 3 * 3600)
    _held_by(sessions, ref, run)

    _tick(instance, settings, storage, watching)

    assert _row(sessions, ref).status == ("FAILED" if times_out else "PENDING")
    canceled = instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
    assert canceled == times_out


def test_a_newer_run_queued_past_the_deadline_fails_the_export_and_is_canceled(
    env, instance, settings, storage, sessions
):
    """A retry or replacement run is not the holder; it used to wait in the queue for ever."""
    ref = _export(sessions, status="RUNNING", run_id=None, silence_s=1)
    holder = _run(instance, ref, dg.DagsterRunStatus.FAILURE, **{"dagster/will_retry": "true"})
    _held_by(sessions, ref, holder)
    retry = _run(instance, ref, dg.DagsterRunStatus.NOT_STARTED)
    _queued_for(instance, retry, 601)

    _tick(instance, settings, storage)

    row = _row(sessions, ref)
    assert (row.status, row.error) == ("FAILED", "its run waited in Dagster's queue for more than 600 s")
    assert instance.get_run_by_id(retry.run_id).status == dg.DagsterRunStatus.CANCELED


# -- review 2026-12-07 N8: one unreadable row, and rows past the first batch ----------------------
def test_an_unreadable_export_is_failed_and_the_others_are_still_reconciled(
    env, instance, settings, storage, sessions
):
    poison = _export(sessions, status="PENDING", run_id=None, age_s=3600 * 24 * 365)  # the oldest of all
    with sessions.begin() as s:
        s.execute(
            text("UPDATE exports SET params = CAST(:p AS jsonb) WHERE reference_id = :ref"),
            {"p": '{"written by": "a future version"}', "ref": poison},
        )
    orphan = _export(sessions, status="PENDING", run_id=None, age_s=30)

    requests = _tick(instance, settings, storage)

    assert [r.run_key for r in _requests_for(orphan, requests)] == [orphan]
    row = _row(sessions, poison)
    assert row.status == "FAILED"
    assert row.error.startswith("the export's stored request cannot be read: "), row.error


def test_exports_past_the_first_batch_are_reached_on_a_later_tick(
    env, instance, settings, storage, sessions, monkeypatch
):
    monkeypatch.setattr(reconciler, "BATCH", 5)
    older = [_export(sessions, status="PENDING", run_id=None, age_s=7200 + i) for i in range(12)]
    ref = _export(sessions, status="RUNNING", run_id=str(uuid.uuid4()), age_s=7100, silence_s=1)
    try:
        context = dg.build_sensor_context(
            instance=instance,
            resources={"export_db": ExportDbResource(url=settings.database_url), "storage": storage},
        )
        for _ in range(50):  # every active row of the shared database, 5 a tick, until it is reached
            export_reconciler_sensor(context)
            if _row(sessions, ref).status != "RUNNING":
                break
        row = _row(sessions, ref)
        assert row.status == "FAILED" and "no longer exists" in row.error, row.error
    finally:
        with sessions.begin() as s:
            s.execute(delete(Export).where(Export.reference_id.in_(older)))
