"""The one `Definitions` of the export engine: jobs, sensors and resources are assembled here only."""

from __future__ import annotations

from typing import Any

import dagster as dg

from export_engine.jobs import export_job
from export_engine.maintenance import retention_job, retention_schedule
from export_engine.package_jobs import package_job
from export_engine.resources import ExportDbResource, S3StorageResource, SourceDatabaseResource
from export_engine.sensors import export_reconciler_sensor
from export_engine.settings import get_settings


def _from_settings(resource_cls: Any) -> dg.ResourceDefinition:
    """Build the resource from the environment when a run starts, never at import time."""
    return dg.ResourceDefinition(
        resource_fn=lambda _: resource_cls.from_settings(get_settings()),
        description=resource_cls.__doc__,
    )


defs = dg.Definitions(
    jobs=[export_job, package_job, retention_job],
    schedules=[retention_schedule],
    sensors=[export_reconciler_sensor],
    resources={
        "export_db": _from_settings(ExportDbResource),
        "source_db": _from_settings(SourceDatabaseResource),
        "storage": _from_settings(S3StorageResource),
    },
)
