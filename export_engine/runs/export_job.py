"""`export_job`: one op that streams one export to S3 and records every step on the export row."""
# No `from __future__ import annotations`: Dagster reads the op/sensor annotations at definition time.

import json
import threading
import time
from datetime import timedelta

import dagster as dg

from export_engine.core.catalog import load_catalog
from export_engine.core.export_spec import ExportSpec
from export_engine.db.models import Export
from export_engine.errors import ExportPermanentError
from export_engine.lifecycle.transitions import ACTIVE as ACTIVE_STATUS_VALUES
from export_engine.pipeline.export import run_export
from export_engine.runs import op_lifecycle
from export_engine.runs.heartbeat import LatestRows, heartbeat
from export_engine.runs.op_lifecycle import EXPORT_RETRY_POLICY, describe_error, failure_policy
from export_engine.runs.op_lifecycle import MAX_RETRIES as MAX_RETRIES  # re-exported: tests count attempts
from export_engine.runs.resources import ExportDbResource, S3StorageResource, SourceDatabaseResource
from export_engine.settings import get_settings

RUN_TAG_KEYS = ("reference_id", "owner", "table_name", "format", "dedup_key")


class ExportConfig(dg.Config):
    """Which export to run. Everything else is read from its row: the export DB is the one source of
    truth, so a run re-executed from the launchpad with edited config cannot change what is exported."""

    reference_id: str


@dg.op(retry_policy=EXPORT_RETRY_POLICY)
def export_op(
    context: dg.OpExecutionContext,
    config: ExportConfig,
    export_db: dg.ResourceParam[ExportDbResource],
    source_db: dg.ResourceParam[SourceDatabaseResource],
    storage: dg.ResourceParam[S3StorageResource],
) -> dg.Output[None]:
    reference_id, run_id = config.reference_id, context.run_id
    settings = get_settings()
    repo = export_db.repository()
    claim = op_lifecycle.claim(context, repo, reference_id, settings)
    if claim is None:
        export = repo.get(reference_id)
        status = export.status if export else "missing"
        holder = export.dagster_run_id if export else None
        reason = status if status not in ACTIVE_STATUS_VALUES else f"{status}, held by live run {holder}"
        context.log.warning("export %s is %s; this run does nothing", reference_id, reason)
        return dg.Output(None, metadata={"reference_id": reference_id, "skipped_because": reason})

    claimed_at = time.monotonic()
    if context.retry_number:  # each log line is an event-log row; a first attempt is the run's own story
        context.log.info("export %s: attempt %d started", reference_id, context.retry_number + 1)
    # Set when this run stops holding a RUNNING export (canceled by its owner, failed by the
    # reconciler, taken over): the op stops on its own even if Dagster's termination never reaches it.
    ended_elsewhere = threading.Event()
    progress = LatestRows()

    def beat() -> None:
        if not repo.beat(reference_id, run_id, progress.rows):
            ended_elsewhere.set()

    with failure_policy(
        context,
        repo,
        kind="export",
        claim=claim,
        claimed_at=claimed_at,
        max_runtime_seconds=settings.export_max_runtime_seconds,
    ):
        spec = _read_spec(claim.export)
        key = spec.object_key(reference_id, run_id)
        op_lifecycle.refuse_if_past_deadline(repo, claim, run_id, settings.export_max_runtime_seconds)
        with heartbeat(beat):
            # This run holds the export now: uploads of earlier attempts or runs (killed workers) are garbage.
            if stale := storage.abort_uploads_under(spec.object_prefix(reference_id)):
                context.log.warning(
                    "export %s: aborted %d upload(s) of earlier attempts", reference_id, stale
                )
            result = run_export(
                spec,
                key,
                catalog=load_catalog(settings.catalog_path),
                source=source_db,
                storage=storage,
                on_progress=progress.report,
                parallel=settings.export_parallel_streams,
                stop=ended_elsewhere,
                writer_params={"export_reference": reference_id, "page_size": settings.pdf_page_size},
            )

    completed = op_lifecycle.record_completion(
        repo,
        reference_id,
        run_id,
        s3_key=result.s3_key,
        row_count=result.row_count,
        file_size_bytes=result.file_size_bytes,
        retention=timedelta(hours=settings.retention_hours),
    )
    if not completed:
        # Canceled, or taken over, while the last part went up: this run's own object must not outlive it.
        storage.delete(result.s3_key)
        context.log.warning("export %s ended while finishing; this run's object was deleted", reference_id)
        return dg.Output(None, metadata={"reference_id": reference_id, "discarded": True})
    # What it did is the output's metadata (no log line: one event-log row less per export).
    return dg.Output(
        None,
        metadata={
            "reference_id": reference_id,
            "row_count": result.row_count,
            "bytes": result.file_size_bytes,
            "s3_uri": dg.MetadataValue.url(f"s3://{storage.bucket}/{result.s3_key}"),
            "duration_s": round(result.duration_s, 3),
            "rows_per_s": round(result.rows_per_second),
        },
    )


def _read_spec(export: Export) -> ExportSpec:
    """A row that cannot be read will not read better on a retry: fail the export now."""
    try:
        return ExportSpec.from_canonical(export.params)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        request = json.dumps(export.params, default=str)[:500]
        raise ExportPermanentError(
            f"the export's stored request cannot be read: {describe_error(exc)}; the request: {request}"
        ) from exc


@dg.job(executor_def=dg.in_process_executor, description="Stream one user's slice of a dataset to S3.")
def export_job() -> None:
    export_op()
