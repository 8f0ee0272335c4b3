"""The one `Definitions` of the export engine: jobs, sensors and resources are assembled here only."""

from __future__ import annotations

from typing import Any

import dagster as dg

from export_engine.runs.export_job import export_job
from export_engine.runs.history import history_job, history_schedule
from export_engine.runs.maintenance import retention_job, retention_schedule
from export_engine.runs.notification_sensor import notification_sensor
from export_engine.runs.package_job import package_job
from export_engine.runs.reconciler import export_reconciler_sensor
from export_engine.runs.resources import ExportDbResource, S3StorageResource, SourceDatabaseResource
from export_engine.settings import Settings, get_settings

_built: dict[type, tuple[Settings, Any]] = {}  # per process: resource class -> (its settings, it)


def _from_settings(resource_cls: Any) -> dg.ResourceDefinition:
    """Built from the environment when a run first needs it (never at import time), then kept for the
    process's next runs while the settings are the same: building one per run was 6 % of a run
    worker's CPU for a tiny export (py-spy, `make bench-small`), and a kept one keeps its clients."""

    def build(_: Any) -> Any:
        settings = get_settings()
        built = _built.get(resource_cls)
        if built is None or built[0] is not settings:
            built = _built[resource_cls] = (settings, resource_cls.from_settings(settings))
        return built[1]

    return dg.ResourceDefinition(resource_fn=build, description=resource_cls.__doc__)


defs = dg.Definitions(
    jobs=[export_job, package_job, retention_job, history_job],
    schedules=[retention_schedule, history_schedule],
    sensors=[export_reconciler_sensor, notification_sensor],
    resources={
        "export_db": _from_settings(ExportDbResource),
        "source_db": _from_settings(SourceDatabaseResource),
        "storage": _from_settings(S3StorageResource),
    },
)
