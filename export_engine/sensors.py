"""Sensors that keep every accepted export moving."""
# No `from __future__ import annotations`: Dagster reads the op/sensor annotations at definition time.


from datetime import datetime, timedelta, timezone

import dagster as dg
from sqlalchemy import select

from export_engine.db.models import Export, ExportStatus
from export_engine.db.session import session_factory
from export_engine.jobs import export_job
from export_engine.request import ExportSpec
from export_engine.resources import ExportDbResource
from export_engine.submission import run_config_for, run_tags_for

ORPHAN_GRACE = timedelta(seconds=10)


@dg.sensor(job=export_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def orphaned_exports_sensor(context: dg.SensorEvaluationContext, export_db: dg.ResourceParam[ExportDbResource]):
    """Submit PENDING exports the gateway accepted but could not hand to Dagster (it died, or Dagster was down).

    A run already tagged with the export's reference id is adopted instead of submitting another one;
    the run key makes a second request for the same export a no-op.
    """
    cutoff = datetime.now(timezone.utc) - ORPHAN_GRACE
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
            tags=run_tags_for(export.reference_id, spec),
        )
