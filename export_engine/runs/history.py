"""Dagster's history stays bounded: runs with nothing left to serve are deleted through `delete_run`.

Every export is its own run, and Dagster keeps a run (one `runs` row, ~9 `run_tags`, ~16 `event_logs`:
~24 KB measured) forever. Every 15 minutes this job deletes, through Dagster's own API, the finished
runs `lifecycle.history.run_may_go` allows (an export EXPIRED, CANCELED or purged; a FAILED one after
FAILED_RUN_HISTORY_DAYS), housekeeping runs after RUN_HISTORY_DAYS, and export rows past the audit
window (EXPORT_AUDIT_DAYS).

Runs are scanned oldest first from a cursor kept in Dagster's own key-value store, a bounded number
of pages per tick, so a month of kept FAILED runs never stalls the sweep; at the newest finished run
it starts over from the oldest, where runs whose export expired since are found.
"""
# No `from __future__ import annotations`: Dagster reads the op annotations at definition time.

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from export_engine.db.session import session_factory
from export_engine.lifecycle.history import export_statuses, purge_exports, run_may_go
from export_engine.runs.resources import ExportDbResource
from export_engine.settings import Settings, get_settings

CURSOR_KEY = "export_engine/run_history_cursor"
MIN_RUN_AGE = timedelta(hours=1)  # never race the reconciler over a run that just ended
EXPORT_JOBS = ("export_job", "package_job")
_FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


@dataclass(frozen=True)
class HistoryResult:
    runs_scanned: int
    runs_deleted: int


def forget_runs(
    instance: dg.DagsterInstance,
    sessions,
    settings: Settings,
    *,
    now: datetime | None = None,
    page: int = 500,
    max_pages: int = 10,
) -> HistoryResult:
    """One bounded sweep over finished runs, from the stored cursor; returns what it did."""
    now = now or datetime.now(UTC)
    run_history = timedelta(days=settings.run_history_days)
    failed_history = timedelta(days=settings.failed_run_history_days)
    storage = instance.run_storage
    cursor = storage.get_cursor_values({CURSOR_KEY}).get(CURSOR_KEY) or None
    scanned = deleted = 0
    for _ in range(max_pages):
        records = instance.get_run_records(
            filters=dg.RunsFilter(statuses=_FINISHED, updated_before=now - MIN_RUN_AGE),
            limit=page,
            ascending=True,
            cursor=cursor,
        )
        statuses = export_statuses(sessions, (r.dagster_run.tags.get("reference_id") or "" for r in records))
        for record in records:
            run = record.dagster_run
            ended = record.update_timestamp
            age = now - (ended if ended.tzinfo else ended.replace(tzinfo=UTC))
            reference_id = run.tags.get("reference_id")
            if run.job_name in EXPORT_JOBS and reference_id:
                doomed = run_may_go(statuses.get(reference_id), run_age=age, failed_history=failed_history)
            else:
                doomed = age > run_history
            if doomed:
                instance.delete_run(run.run_id)
                deleted += 1
            else:
                cursor = run.run_id  # the cursor must name a run that still exists
        scanned += len(records)
        if len(records) < page:
            cursor = None  # reached the newest finished run: next sweep starts from the oldest again
            break
    storage.set_cursor_values({CURSOR_KEY: cursor or ""})
    return HistoryResult(scanned, deleted)


@dg.op
def forget_history_op(
    context: dg.OpExecutionContext, export_db: dg.ResourceParam[ExportDbResource]
) -> dg.Output[None]:
    settings = get_settings()
    sessions = session_factory(export_db.url)
    result = forget_runs(context.instance, sessions, settings)
    purged = purge_exports(sessions, audit=timedelta(days=settings.export_audit_days))
    context.log.info(
        "history: %d runs scanned, %d deleted, %d export rows purged",
        result.runs_scanned,
        result.runs_deleted,
        purged,
    )
    return dg.Output(
        None,
        metadata={
            "runs_scanned": result.runs_scanned,
            "runs_deleted": result.runs_deleted,
            "exports_purged": purged,
        },
    )


@dg.job(
    executor_def=dg.in_process_executor,
    description="Delete Dagster runs whose export has nothing left to serve, and export rows past the audit window.",
)
def history_job() -> None:
    forget_history_op()


history_schedule = dg.ScheduleDefinition(
    name="history_schedule",
    job=history_job,
    cron_schedule="7-59/15 * * * *",  # between the retention sweeps, which make exports EXPIRED
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
