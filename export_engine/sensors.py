"""Sensors that keep every accepted export moving."""
# No `from __future__ import annotations`: Dagster reads the op/sensor annotations at definition time.

from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG
from sqlalchemy import select

from export_engine.db.models import Export, ExportStatus
from export_engine.db.session import session_factory
from export_engine.jobs import export_job
from export_engine.request import ExportSpec
from export_engine.resources import ExportDbResource, S3StorageResource
from export_engine.settings import get_settings
from export_engine.submission import run_config_for, run_tags_with_deadline

ORPHAN_GRACE = timedelta(seconds=10)


@dg.sensor(job=export_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def orphaned_exports_sensor(
    context: dg.SensorEvaluationContext, export_db: dg.ResourceParam[ExportDbResource]
):
    """Submit PENDING exports the gateway accepted but could not hand to Dagster (it died, or Dagster was down).

    A run already tagged with the export's reference id is adopted instead of submitting another one;
    the run key makes a second request for the same export a no-op.
    """
    cutoff = datetime.now(UTC) - ORPHAN_GRACE
    sessions = session_factory(export_db.url)
    with sessions() as session:
        orphans = session.scalars(
            select(Export)
            .where(
                Export.status == ExportStatus.PENDING.value,
                Export.dagster_run_id.is_(None),
                Export.created_at < cutoff,
            )
            .order_by(Export.created_at)
            .limit(100)
        ).all()
    repo = export_db.repository()
    for export in orphans:
        existing = context.instance.get_run_records(
            dg.RunsFilter(tags={"reference_id": export.reference_id}), limit=1
        )
        if existing:
            repo.set_run_id(export.reference_id, existing[0].dagster_run.run_id)
            continue
        spec = ExportSpec.from_canonical(export.params)
        context.log.info("submitting orphaned export %s", export.reference_id)
        yield dg.RunRequest(
            run_key=export.reference_id,
            run_config=run_config_for(export.reference_id, spec),
            tags=run_tags_with_deadline(export.reference_id, spec, get_settings().export_max_runtime_seconds),
        )


def _end_export(
    export_db: ExportDbResource, storage: S3StorageResource, reference_id: str, reason: str
) -> bool:
    """Abort the export's upload, then record FAILED: the run's worker may never get to abort it itself."""
    repo = export_db.repository()
    export = repo.get(reference_id)
    if export is None or export.status not in ("PENDING", "RUNNING"):
        return False
    storage.abort_pending_uploads(ExportSpec.from_canonical(export.params).object_key(reference_id))
    return repo.mark_failed(reference_id, reason)


def _reason(event_message: str | None, default: str) -> str:
    message = (event_message or "").strip()
    return message.splitlines()[0][:500] if message else default


@dg.run_failure_sensor(
    monitored_jobs=[export_job], minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING
)
def export_run_failure_sensor(
    context: dg.RunFailureSensorContext,
    export_db: dg.ResourceParam[ExportDbResource],
    storage: dg.ResourceParam[S3StorageResource],
):
    """Record FAILED for runs that died outside the op (crash with no retries left, run monitor timeout).

    A run Dagster is about to retry (`dagster/will_retry`) leaves the export RUNNING: the retry continues it.
    """
    run = context.dagster_run
    reference_id = run.tags.get("reference_id")
    if not reference_id or run.tags.get(WILL_RETRY_TAG) == "true":
        return
    reason = _reason(context.failure_event.message, "the Dagster run failed")
    if _end_export(export_db, storage, reference_id, reason):
        context.log.info("export %s marked FAILED: %s", reference_id, reason)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    monitored_jobs=[export_job],
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def export_run_canceled_sensor(
    context: dg.RunStatusSensorContext,
    export_db: dg.ResourceParam[ExportDbResource],
    storage: dg.ResourceParam[S3StorageResource],
):
    """A run canceled from the Dagster UI (or never started) ends its export; a user's DELETE already did."""
    reference_id = context.dagster_run.tags.get("reference_id")
    if reference_id and _end_export(export_db, storage, reference_id, "the Dagster run was canceled"):
        context.log.info("export %s marked FAILED: run canceled", reference_id)


@dg.sensor(minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING)
def stalled_exports_sensor(
    context: dg.SensorEvaluationContext, export_db: dg.ResourceParam[ExportDbResource]
):
    """Fail runs whose worker stopped sending heartbeats (killed, OOM, host lost), so run retries take over.

    The default run launcher cannot see a dead worker process; the export's heartbeat can.
    """
    timeout = get_settings().heartbeat_timeout_seconds
    for export in export_db.repository().stalled(older_than_seconds=timeout):
        run = context.instance.get_run_by_id(export.dagster_run_id) if export.dagster_run_id else None
        if run is None or run.status not in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
            continue
        message = f"the run worker sent no heartbeat for {timeout}s (killed or frozen)"
        context.log.warning("export %s: %s; failing run %s", export.reference_id, message, run.run_id)
        context.instance.report_run_failed(run, message)
    return dg.SkipReason("checked for stalled exports")
