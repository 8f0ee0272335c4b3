"""One reconciler keeps every accepted export moving: each PENDING/RUNNING export is compared with its
Dagster run, and whatever fell between the gaps is resolved.

| the export's run                          | what the reconciler does                                   |
|-------------------------------------------|------------------------------------------------------------|
| none yet, export older than the grace     | adopt a run tagged with its reference id, or submit one    |
| deleted from Dagster                      | FAILED "its Dagster run no longer exists"                  |
| queued longer than the queue timeout      | FAILED, then the queued run is canceled (the holder or a newer run; timed from the run's creation) |
| its stored request cannot be read         | FAILED with why (a hand edit, or a future version's params) |
| started, heartbeat older than the timeout | report the run failed: run retries start a run that takes over |
| finished, a newer run of the export lives | nothing: that run takes the export over                    |
| its newest run failed, a retry promised   | wait `RUN_RETRY_GRACE_SECONDS` for Dagster's retry, then submit one run in its place (runs ≤ 1 + run_retries.max_retries) |
| its newest run finished otherwise         | FAILED with that run's failure message                     |

A promised retry can be lost: Dagster stores a RUN_FAILURE event a moment before it marks the run
FAILURE, and its retry daemon (which reads new failure events by cursor) skips an event whose run still
looks alive. The reconciler then submits the run Dagster did not; a late retry of Dagster's finds the
export held by a live run and does nothing (the claim is fenced by run id).

Every decision is written through `lifecycle` (fenced by the run id it saw) *before* any S3 call;
aborting the export's uploads afterwards is best effort, and retention sweeps what is left. One
export that raises is logged and skipped, never the whole tick. A tick examines `BATCH` exports; the
sensor's cursor pages through the rest (oldest first, then round again), so every active export is
examined every few ticks however many there are (`reconciler_cursor`).
"""
# No `from __future__ import annotations`: Dagster reads the op/sensor annotations at definition time.

import time

import dagster as dg
from sqlalchemy import func, select, tuple_

from export_engine.core.package_spec import stored_spec
from export_engine.db.models import Export, ExportStatus
from export_engine.db.session import session_factory
from export_engine.lifecycle import transitions
from export_engine.lifecycle.repository import ExportRepository
from export_engine.runs.export_job import export_job
from export_engine.runs.op_lifecycle import describe_error
from export_engine.runs.package_job import package_job
from export_engine.runs.reconciler_cursor import PageKey, ReconcilerCursor
from export_engine.runs.resources import ExportDbResource, S3StorageResource
from export_engine.runs.submission import ORPHAN_GRACE, job_name_for, run_config_for, run_tags_with_deadline
from export_engine.settings import Settings, get_settings

WILL_RETRY_TAG = "dagster/will_retry"  # set by Dagster on a failed run it is about to retry
REPLACES_TAG = "export_engine/replaces_run"  # on a run the reconciler submitted for a lost retry
BATCH = 200

_WAITING = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED)
_LIVE = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)


@dg.sensor(
    jobs=[export_job, package_job], minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING
)
def export_reconciler_sensor(
    context: dg.SensorEvaluationContext,
    export_db: dg.ResourceParam[ExportDbResource],
    storage: dg.ResourceParam[S3StorageResource],
):
    settings = get_settings()
    requests: list[dg.RunRequest] = []
    now = time.time()
    cursor = ReconcilerCursor.read(context.cursor, now=now)
    active = _active_exports(export_db.url, cursor.page)
    last = active[-1][0] if len(active) == BATCH else None  # a short batch: the next tick starts over
    context.update_cursor(cursor.next((last.created_at, last.reference_id) if last else None, now=now))
    runs = _runs_by_id(context.instance, [e.dagster_run_id for e, _, _ in active if e.dagster_run_id])
    for export, age, silence in active:
        try:
            outcome = _reconcile(context, export_db, export, age, silence, settings, runs, cursor)
        except Exception as exc:  # one export's trouble must not stop every other export's reconciling
            context.log.error(
                "export %s: could not be reconciled: %s", export.reference_id, describe_error(exc)
            )
            continue
        if isinstance(outcome, dg.RunRequest):
            requests.append(outcome)
        elif outcome is not None:  # the export was just FAILED with this reason
            context.log.warning("export %s marked FAILED: %s", export.reference_id, outcome)
            _abort_uploads(context, storage, export)
    return requests or dg.SkipReason("every active export has a live run")


def _active_exports(url: str, after: PageKey | None) -> list[tuple[Export, float, float | None]]:
    """`BATCH` PENDING/RUNNING exports after the cursor's (created_at, reference_id), oldest first, with
    their age and heartbeat silence by the database's clock."""
    query = select(
        Export,
        func.extract("epoch", func.now() - Export.created_at),
        func.extract("epoch", func.now() - Export.heartbeat_at),
    ).where(Export.status.in_(transitions.ACTIVE))
    if after is not None:
        query = query.where(tuple_(Export.created_at, Export.reference_id) > after)
    with session_factory(url)() as session:
        rows = session.execute(query.order_by(Export.created_at, Export.reference_id).limit(BATCH)).all()
    return [(e, float(age), float(silence) if silence is not None else None) for e, age, silence in rows]


def _reconcile(
    context: dg.SensorEvaluationContext,
    export_db: ExportDbResource,
    export: Export,
    age: float,
    silence: float | None,
    settings: Settings,
    runs: dict[str, dg.RunRecord],
    cursor: ReconcilerCursor,
) -> dg.RunRequest | str | None:
    """A run to submit, the reason the export was just failed, or None (nothing to do yet)."""
    instance, repo, ref = context.instance, export_db.repository(), export.reference_id
    holder = export.dagster_run_id
    try:
        spec = stored_spec(export.params)
    except (KeyError, ValueError, TypeError) as exc:  # no run can read it either: end it now, with why
        reason = f"the {export.kind}'s stored request cannot be read: {describe_error(exc)}"
        return _fail(repo, ref, holder, reason)
    if holder is None:
        if age < ORPHAN_GRACE.total_seconds():
            return None
        tagged = _newest_run(instance, ref)
        if tagged is not None:
            repo.record_run(ref, tagged.dagster_run.run_id)
            return None
        context.log.info("submitting %s %s, which has no run", export.kind, ref)
        return dg.RunRequest(
            run_key=ref,
            job_name=job_name_for(export.kind),
            run_config=run_config_for(ref, export.kind),
            tags=run_tags_with_deadline(ref, spec, settings.export_max_runtime_seconds),
        )

    record = runs.get(holder)
    if record is None:
        successor = _newest_run(instance, ref)
        if successor is not None and successor.dagster_run.status in _WAITING:
            return _time_out_queued(instance, repo, ref, holder, successor, settings, cursor)
        if successor is not None and successor.dagster_run.status in _LIVE:
            return None  # a newer run of this export will take it over
        return _fail(repo, ref, holder, f"its Dagster run {holder} no longer exists (deleted)")
    run = record.dagster_run
    if run.status in _WAITING:
        return _time_out_queued(instance, repo, ref, holder, record, settings, cursor)
    if run.status in _LIVE:
        stalled = (
            export.status == ExportStatus.RUNNING.value
            and silence is not None
            and silence > settings.heartbeat_timeout_seconds
        )
        if stalled and run.status != dg.DagsterRunStatus.CANCELING:
            message = f"the run worker sent no heartbeat for {settings.heartbeat_timeout_seconds}s (killed or frozen)"
            context.log.warning("export %s: %s; failing run %s", ref, message, holder)
            instance.report_run_failed(run, message)
        return None
    # The holder finished without finishing the export; a newer run of it (a retry) may be on its way.
    newest: dg.RunRecord = _newest_run(instance, ref) or record
    last = newest.dagster_run
    if last.status in _WAITING:
        return _time_out_queued(instance, repo, ref, holder, newest, settings, cursor)
    if last.status in _LIVE:
        return None
    # No tag yet is not "no retry": Dagster stores the failure first and tags it a moment later (the
    # run monitor fails a run whose Celery task died, and this sensor can read it in between).
    will_retry = last.tags.get(WILL_RETRY_TAG)
    if last.status == dg.DagsterRunStatus.FAILURE and will_retry != "false":
        ended = newest.end_time or time.time()
        if time.time() - ended < settings.run_retry_grace_seconds:  # Dagster's retry comes in seconds
            return None
        if will_retry == "true":
            return _replace_lost_retry(context, repo, export, last, settings)
    return _fail(repo, ref, holder, _run_failure_reason(instance, last))


def _replace_lost_retry(
    context: dg.SensorEvaluationContext,
    repo: ExportRepository,
    export: Export,
    failed: dg.DagsterRun,
    settings: Settings,
) -> dg.RunRequest | str | None:
    """Submit the retry Dagster promised for `failed` and never launched, within the same retry budget."""
    instance, ref = context.instance, export.reference_id
    runs_so_far = instance.get_runs_count(dg.RunsFilter(tags={"reference_id": ref}))
    if runs_so_far > instance.run_retries_max_retries:
        reason = f"its run failed {runs_so_far} times: {_run_failure_reason(instance, failed)}"
        return _fail(repo, ref, export.dagster_run_id, reason)
    context.log.warning(
        "export %s: Dagster promised to retry run %s but launched nothing in %d s; submitting a run in its place",
        ref,
        failed.run_id,
        settings.run_retry_grace_seconds,
    )
    tags = run_tags_with_deadline(ref, stored_spec(export.params), settings.export_max_runtime_seconds)
    return dg.RunRequest(
        run_key=f"{ref}:after:{failed.run_id}",  # one per lost retry, however many ticks see it
        job_name=job_name_for(export.kind),
        run_config=run_config_for(ref, export.kind),
        tags={**tags, REPLACES_TAG: failed.run_id},
    )


def _time_out_queued(
    instance: dg.DagsterInstance,
    repo: ExportRepository,
    ref: str,
    holder: str | None,
    queued: dg.RunRecord,
    settings: Settings,
    cursor: ReconcilerCursor,
) -> str | None:
    """Fail the export and cancel `queued` once that run (the holder, a retry or a replacement) has
    waited in the queue past the deadline, timed from the run's creation (not the export's) and only
    while the reconciler watched: after a daemon outage the backlog starts in seconds (review N5)."""
    timeout = settings.export_queue_timeout_seconds
    if cursor.queued_seconds(queued.create_timestamp, now=time.time()) < timeout:
        return None
    reason = f"its run waited in Dagster's queue for more than {timeout} s"
    failed = _fail(repo, ref, holder, reason)
    if failed:
        instance.report_run_canceled(queued.dagster_run, message=reason)
    return failed


def _runs_by_id(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, dg.RunRecord]:
    """The active exports' runs in one query per tick (a run missing here was deleted from Dagster)."""
    if not run_ids:
        return {}
    records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
    return {record.dagster_run.run_id: record for record in records}


def _newest_run(instance: dg.DagsterInstance, reference_id: str) -> dg.RunRecord | None:
    records = instance.get_run_records(dg.RunsFilter(tags={"reference_id": reference_id}), limit=1)
    return records[0] if records else None


def _fail(repo, reference_id: str, run_id: str | None, reason: str) -> str | None:
    return reason if repo.fail(reference_id, reason, run_id=run_id) else None


def _run_failure_reason(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    if run.status == dg.DagsterRunStatus.CANCELED:
        return "the Dagster run was canceled"
    events = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    message = (events[-1].message or "").strip() if events else ""
    if message:
        return message.splitlines()[0][:500]
    return f"the Dagster run ended {run.status.value} without finishing the export"


def _abort_uploads(context: dg.SensorEvaluationContext, storage: S3StorageResource, export: Export) -> None:
    """Best effort: the status is already written; retention aborts whatever this misses."""
    try:
        storage.abort_uploads_under(stored_spec(export.params).object_prefix(export.reference_id))
    except Exception as exc:
        context.log.warning("export %s: could not abort its uploads yet: %s", export.reference_id, exc)
