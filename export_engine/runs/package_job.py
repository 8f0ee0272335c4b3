"""`package_job`: one run per package; its op streams every dataset into one ZIP on S3.

The ZIP is one stream into one multipart upload, so the datasets are written by one op, one after the
other: an op boundary between two entries would have to end the stream (stage files, or hand a live
upload from op to op, which a retry could not resume). Each dataset is instead a dynamic output of the
op, yielded the moment its entry is written, so the Dagster UI lists every dataset of the run with
its rows, bytes, SHA-256 and seconds. Claiming, heartbeat, cancellation, the runtime deadline and
completion are the export op's (`export_engine.runs.export_job`), and so are the retry policy and what a failure
does (`export_engine.runs.op_lifecycle`), on the same row and state machine.
"""
# No `from __future__ import annotations`: Dagster reads the op annotations at definition time.

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dagster as dg

from export_engine.core.catalog import load_catalog
from export_engine.core.package_spec import PackageSpec
from export_engine.db.models import Export
from export_engine.errors import ExportPermanentError
from export_engine.lifecycle.transitions import ACTIVE as ACTIVE_STATUS_VALUES
from export_engine.pipeline.package import stream_package
from export_engine.pipeline.package_plan import PackageProgress, PackageResult, Part, plan
from export_engine.runs import op_lifecycle
from export_engine.runs.heartbeat import heartbeat
from export_engine.runs.op_lifecycle import EXPORT_RETRY_POLICY, describe_error, failure_policy
from export_engine.runs.resources import ExportDbResource, S3StorageResource, SourceDatabaseResource
from export_engine.settings import get_settings


class PackageConfig(dg.Config):
    """Which package to run; everything else is read from its row (the export DB is the truth)."""

    reference_id: str


@dg.op(
    retry_policy=EXPORT_RETRY_POLICY,
    out={"datasets": dg.DynamicOut(is_required=False), "package": dg.Out(is_required=False)},
)
def package_op(
    context: dg.OpExecutionContext,
    config: PackageConfig,
    export_db: dg.ResourceParam[ExportDbResource],
    source_db: dg.ResourceParam[SourceDatabaseResource],
    storage: dg.ResourceParam[S3StorageResource],
) -> Iterator[Any]:
    reference_id, run_id = config.reference_id, context.run_id
    settings = get_settings()
    repo = export_db.repository()
    claim = op_lifecycle.claim(context, repo, reference_id, settings)
    if claim is None:
        export = repo.get(reference_id)
        status = export.status if export else "missing"
        holder = export.dagster_run_id if export else None
        reason = status if status not in ACTIVE_STATUS_VALUES else f"{status}, held by live run {holder}"
        context.log.warning("package %s is %s; this run does nothing", reference_id, reason)
        yield dg.Output(None, "package", metadata={"reference_id": reference_id, "skipped_because": reason})
        return

    claimed_at = time.monotonic()
    context.log.info("package %s: attempt %d started", reference_id, context.retry_number + 1)
    ended_elsewhere = threading.Event()
    catalog = load_catalog(settings.catalog_path)
    result: PackageResult | None = None
    spec: PackageSpec | None = None
    with failure_policy(
        context,
        repo,
        kind="package",
        claim=claim,
        claimed_at=claimed_at,
        max_runtime_seconds=settings.export_max_runtime_seconds,
        on_stop=lambda: _abort_own_uploads(context, storage, spec, reference_id, run_id),
    ):
        spec = _read_spec(claim.export)
        progress = PackageProgress([part for _, _, part in plan(spec, catalog)])

        def beat() -> None:
            rows, parts = progress.snapshot()
            if not repo.beat(reference_id, run_id, rows, parts=parts):
                ended_elsewhere.set()

        key = spec.object_key(reference_id, run_id)
        op_lifecycle.refuse_if_past_deadline(repo, claim, run_id, settings.export_max_runtime_seconds)
        with heartbeat(beat):
            if stale := storage.abort_uploads_under(spec.object_prefix(reference_id)):
                context.log.warning(
                    "package %s: aborted %d upload(s) of earlier attempts", reference_id, stale
                )
            for item in stream_package(
                spec,
                key,
                reference_id=reference_id,
                created_at=claim.export.created_at,
                catalog=catalog,
                source=source_db,
                storage=storage,
                progress=progress,
                stop=ended_elsewhere,
            ):
                if isinstance(item, Part):
                    context.log.info(
                        "package %s: %s written: %d rows, %d bytes in %.1fs",
                        reference_id,
                        item.path,
                        item.rows,
                        item.bytes,
                        item.seconds or 0.0,
                    )
                    yield dg.DynamicOutput(
                        None, mapping_key=item.dataset, output_name="datasets", metadata=_part_metadata(item)
                    )
                else:
                    result = item

    if result is None:  # stream_package always ends with its result
        raise dg.Failure(description="the package stream ended without a result", allow_retries=False)
    completed = op_lifecycle.record_completion(
        repo,
        reference_id,
        run_id,
        s3_key=result.s3_key,
        row_count=result.row_count,
        file_size_bytes=result.file_size_bytes,
        retention=timedelta(hours=settings.retention_hours),
        parts=[p.view() for p in result.parts],
    )
    if not completed:
        storage.delete(result.s3_key)
        context.log.warning("package %s ended while finishing; this run's object was deleted", reference_id)
        yield dg.Output(None, "package", metadata={"reference_id": reference_id, "discarded": True})
        return
    context.log.info(
        "package %s completed: %d datasets, %d rows, %d bytes in %.1fs",
        reference_id,
        len(result.parts),
        result.row_count,
        result.file_size_bytes,
        result.duration_s,
    )
    yield dg.Output(
        None,
        "package",
        metadata={
            "reference_id": reference_id,
            "datasets": len(result.parts),
            "row_count": result.row_count,
            "bytes": result.file_size_bytes,
            "s3_uri": dg.MetadataValue.url(f"s3://{storage.bucket}/{result.s3_key}"),
            "duration_s": round(result.duration_s, 3),
            "manifest": dg.MetadataValue.json(result.manifest),
        },
    )


def _abort_own_uploads(
    context: dg.OpExecutionContext,
    storage: S3StorageResource,
    spec: PackageSpec | None,
    reference_id: str,
    run_id: str,
) -> None:
    """A stopped package run leaves no upload of its own key, whatever the stream's own abort managed;
    best effort (retention sweeps what an S3 outage leaves). Only its own key: another run may hold
    the package now, and its live upload is under the same prefix (review 2026-12-07 N9)."""
    if spec is None:
        return
    try:
        storage.abort_pending_uploads(spec.object_key(reference_id, run_id))
    except Exception as exc:
        context.log.warning("package %s: could not abort its uploads yet: %s", reference_id, exc)


def _part_metadata(part: Part) -> dict[str, Any]:
    return {
        "path": part.path,
        "row_count": part.rows,
        "bytes": part.bytes,
        "sha256": part.file.get("sha256", ""),
        "duration_s": round(part.seconds or 0.0, 3),
    }


def _read_spec(export: Export) -> PackageSpec:
    try:
        return PackageSpec.from_canonical(export.params)
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportPermanentError(
            f"the package's stored request cannot be read: {describe_error(exc)}"
        ) from exc


@dg.job(
    executor_def=dg.in_process_executor,
    description="Stream several of one user's datasets into one ZIP with a manifest on S3.",
)
def package_job() -> None:
    package_op()
