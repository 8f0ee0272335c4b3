"""`export_job`: one op that streams one export to S3 and records every step on the export row."""
# No `from __future__ import annotations`: Dagster reads the op/sensor annotations at definition time.

import json
import threading
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from export_engine.catalog import load_catalog
from export_engine.db.repository import ExportRepository
from export_engine.engine import describe_error, is_permanent, run_export
from export_engine.errors import ExportPermanentError
from export_engine.heartbeat import heartbeat
from export_engine.request import ExportSpec
from export_engine.resources import ExportDbResource, S3StorageResource, SourceDatabaseResource
from export_engine.settings import Settings, get_settings
from export_engine.streaming import UploadStopped

MAX_RETRIES = 3
EXPORT_RETRY_POLICY = dg.RetryPolicy(
    max_retries=MAX_RETRIES, delay=1.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
RUN_TAG_KEYS = ("reference_id", "owner", "table_name", "format", "dedup_key")


class ExportConfig(dg.Config):
    """What to export: `ExportSpec.canonical()` plus the reference id (see `submission.run_config_for`)."""

    reference_id: str
    table_name: str
    date_from: str
    date_to: str
    owner: str
    format: str = "csv"
    compression: str | None = None
    columns: list[str] = Field(default_factory=list)  # empty: every catalog column
    filters: dict[str, Any] = Field(default_factory=dict)  # `Filters.canonical()`: sorted ids, text amounts
    column_subset: bool = False  # names the file (`ExportSpec.download_filename`), not part of the key

    def spec(self) -> ExportSpec:
        return ExportSpec.from_canonical(self.model_dump(exclude={"reference_id"}))


@dg.op(retry_policy=EXPORT_RETRY_POLICY)
def export_op(
    context: dg.OpExecutionContext,
    config: ExportConfig,
    export_db: dg.ResourceParam[ExportDbResource],
    source_db: dg.ResourceParam[SourceDatabaseResource],
    storage: dg.ResourceParam[S3StorageResource],
) -> dg.Output[None]:
    reference_id = config.reference_id
    repo = export_db.repository()
    if not repo.mark_running(reference_id, context.run_id):
        export = repo.get(reference_id)
        status = export.status if export else "missing"
        context.log.warning("export %s is %s; nothing to do", reference_id, status)
        return dg.Output(None, metadata={"reference_id": reference_id, "skipped_because": status})

    context.log.info("export %s: attempt %d started", reference_id, context.retry_number + 1)
    # Set when the export stops being RUNNING under us (canceled by its owner, failed by a sensor):
    # the op stops on its own even if Dagster's termination never reaches it.
    ended_elsewhere = threading.Event()

    def still_running(ok: bool) -> None:
        if not ok:
            ended_elsewhere.set()

    try:
        settings, spec = _read_config(config)
        if stale := storage.abort_pending_uploads(spec.object_key(reference_id)):
            context.log.warning("export %s: aborted %d upload(s) left by an earlier run", reference_id, stale)
        _refuse_if_past_deadline(repo, reference_id, settings.export_max_runtime_seconds)
        with heartbeat(lambda: still_running(repo.heartbeat(reference_id))):
            result = run_export(
                spec,
                reference_id,
                catalog=load_catalog(settings.catalog_path),
                source=source_db,
                storage=storage,
                on_progress=lambda rows: still_running(repo.record_progress(reference_id, rows)),
                parallel=settings.export_parallel_streams,
                stop=ended_elsewhere,
            )
    except dg.Failure:
        raise  # already decided: permanent, recorded on the export
    except UploadStopped as exc:
        export = repo.get(reference_id)
        status = export.status if export else "missing"
        reason = f"stopped: the export became {status} while it ran; its upload was aborted"
        context.log.warning("export %s %s", reference_id, reason)
        raise dg.Failure(description=reason, allow_retries=False) from exc
    except dg.DagsterExecutionInterruptedError as exc:
        # Canceled by its owner (already CANCELED: this is a no-op), from the UI, or by the run monitor.
        reason = _termination_reason(repo, reference_id, get_settings().export_max_runtime_seconds)
        repo.mark_failed(reference_id, reason)
        raise dg.Failure(description=reason, allow_retries=False) from exc
    except Exception as exc:
        reason = describe_error(exc)
        permanent = is_permanent(exc)
        if permanent or context.retry_number >= MAX_RETRIES:
            repo.mark_failed(reference_id, reason)
            context.log.error("export %s failed: %s", reference_id, reason)
            raise dg.Failure(
                description=reason,
                metadata={
                    "reference_id": reference_id,
                    "permanent": permanent,
                    "attempt": context.retry_number + 1,
                },
                allow_retries=False,
            ) from exc
        context.log.warning(
            "export %s: attempt %d failed (%s); will retry", reference_id, context.retry_number + 1, reason
        )
        raise

    if not repo.mark_completed(
        reference_id, s3_key=result.s3_key, row_count=result.row_count, file_size_bytes=result.file_size_bytes
    ):
        # Canceled while the last part went up: the file must not outlive its export.
        storage.delete(result.s3_key)
        context.log.warning("export %s ended while finishing; its object was deleted", reference_id)
        return dg.Output(None, metadata={"reference_id": reference_id, "discarded": True})
    context.log.info(
        "export %s completed: %d rows, %d bytes in %.1fs",
        reference_id,
        result.row_count,
        result.file_size_bytes,
        result.duration_s,
    )
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


def _read_config(config: ExportConfig) -> tuple[Settings, ExportSpec]:
    """Settings or a run config that cannot be read will not read better on a retry: fail the export now."""
    try:
        return get_settings(), config.spec()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        request = json.dumps(config.model_dump(exclude={"reference_id"}), default=str)[:500]
        raise ExportPermanentError(
            f"the run cannot read its configuration: {describe_error(exc)}; the run's request: {request}"
        ) from exc


def _termination_reason(repo: ExportRepository, reference_id: str, max_runtime_seconds: int) -> str:
    export = repo.get(reference_id)
    if export is not None and (datetime.now(UTC) - export.created_at).total_seconds() > max_runtime_seconds:
        return f"exceeded the maximum runtime of {max_runtime_seconds} seconds"
    return "the run was terminated"


def _refuse_if_past_deadline(repo: ExportRepository, reference_id: str, max_runtime_seconds: int) -> None:
    """A run retried after the deadline (e.g. after the run monitor killed it) must not start over."""
    export = repo.get(reference_id)
    if export is None:
        return
    age = (datetime.now(UTC) - export.created_at).total_seconds()
    if age > max_runtime_seconds:
        reason = f"exceeded the maximum runtime of {max_runtime_seconds} seconds"
        repo.mark_failed(reference_id, reason)
        raise dg.Failure(description=reason, metadata={"reference_id": reference_id}, allow_retries=False)


@dg.job(executor_def=dg.in_process_executor, description="Stream one user's slice of a dataset to S3.")
def export_job() -> None:
    export_op()
