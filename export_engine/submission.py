"""The run config and tags of an export's Dagster run: one definition, used by the gateway and the sensor."""

from __future__ import annotations

from typing import Any

from export_engine.request import ExportSpec

EXPORT_JOB_NAME = "export_job"


def run_config_for(reference_id: str) -> dict[str, Any]:
    """Only the reference id: the op reads what to export from the export's row."""
    return {"ops": {"export_op": {"config": {"reference_id": reference_id}}}}


def run_tags_for(reference_id: str, spec: ExportSpec) -> dict[str, str]:
    """Tags the Dagster UI filters by; `reference_id` also makes a submission findable before retrying it."""
    return {
        "reference_id": reference_id,
        "owner": spec.owner,
        "table_name": spec.table_name,
        "format": spec.format,
        "dedup_key": spec.dedup_key,
    }


def run_tags_with_deadline(reference_id: str, spec: ExportSpec, max_runtime_seconds: int) -> dict[str, str]:
    """The run tags plus Dagster's run-monitor deadline: a run stuck past it is terminated."""
    return {**run_tags_for(reference_id, spec), "dagster/max_runtime": str(max_runtime_seconds)}
