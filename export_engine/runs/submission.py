"""The run config and tags of an export's Dagster run: one definition, used by the gateway and the sensor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from export_engine.core.export_spec import ExportSpec
from export_engine.core.package_spec import PackageSpec

# The gateway submits right after its commit; the reconciler leaves an export without a run alone this
# long. Until half of it has passed, nobody but the gateway can have submitted a run for the export.
ORPHAN_GRACE = timedelta(seconds=10)
UNCONTESTED_SUBMISSION = ORPHAN_GRACE / 2

EXPORT_JOB_NAME = "export_job"
PACKAGE_JOB_NAME = "package_job"
_JOB_AND_OP = {"export": (EXPORT_JOB_NAME, "export_op"), "package": (PACKAGE_JOB_NAME, "package_op")}


def job_name_for(kind: str = "export") -> str:
    """The Dagster job that runs an `exports` row of this kind."""
    return _JOB_AND_OP[kind][0]


def run_config_for(reference_id: str, kind: str = "export") -> dict[str, Any]:
    """Only the reference id: the op reads what to export from the export's row."""
    return {"ops": {_JOB_AND_OP[kind][1]: {"config": {"reference_id": reference_id}}}}


def run_tags_for(reference_id: str, spec: ExportSpec | PackageSpec) -> dict[str, str]:
    """Tags the Dagster UI filters by; `reference_id` also makes a submission findable before retrying it."""
    return {
        "reference_id": reference_id,
        "owner": spec.owner,
        "table_name": spec.table_name,
        "format": spec.format,
        "dedup_key": spec.dedup_key,
    }


def run_tags_with_deadline(
    reference_id: str, spec: ExportSpec | PackageSpec, max_runtime_seconds: int
) -> dict[str, str]:
    """The run tags plus Dagster's run-monitor deadline: a run stuck past it is terminated."""
    return {**run_tags_for(reference_id, spec), "dagster/max_runtime": str(max_runtime_seconds)}
