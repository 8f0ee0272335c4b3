"""Housekeeping jobs and their schedules."""
# No `from __future__ import annotations`: Dagster reads the op annotations at definition time.

import dagster as dg

from export_engine.db.session import session_factory
from export_engine.lifecycle.retention import abort_abandoned_uploads, delete_orphaned_objects, expire_exports
from export_engine.runs.resources import ExportDbResource, S3StorageResource
from export_engine.settings import get_settings


@dg.op(
    retry_policy=dg.RetryPolicy(
        max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )
)
def expire_old_exports_op(
    context: dg.OpExecutionContext,
    export_db: dg.ResourceParam[ExportDbResource],
    storage: dg.ResourceParam[S3StorageResource],
) -> dg.Output[None]:
    hours = get_settings().retention_hours
    sessions = session_factory(export_db.url)
    result = expire_exports(sessions, storage)
    aborted = abort_abandoned_uploads(sessions, storage)
    orphans = delete_orphaned_objects(sessions, storage)
    context.log.info(
        "retention: %d exports expired, %d objects deleted, %d abandoned uploads aborted, %d orphaned objects deleted",
        result.exports_expired,
        result.objects_deleted,
        aborted,
        orphans,
    )
    return dg.Output(
        None,
        metadata={
            "exports_expired": result.exports_expired,
            "objects_deleted": result.objects_deleted,
            "uploads_aborted": aborted,
            "orphaned_objects_deleted": orphans,
            "retention_hours": hours,
        },
    )


@dg.job(
    executor_def=dg.in_process_executor,
    description="Delete export files past their life (marking them EXPIRED), abandoned uploads and orphaned objects.",
)
def retention_job() -> None:
    expire_old_exports_op()


retention_schedule = dg.ScheduleDefinition(
    name="retention_schedule",
    job=retention_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
