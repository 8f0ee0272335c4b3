"""How long history is kept: which finished runs may be forgotten, and export rows past the audit window.

A run is worth keeping while its export can still be served or questioned:
- PENDING / RUNNING / COMPLETED / SUPERSEDED: the export is alive or its file is still served: keep;
- EXPIRED / CANCELED, or no row at all (purged): nothing is left to serve: the run may go;
- FAILED: kept `failed_run_history_days` after the run ended, so operators read why in the Dagster UI.
The Dagster side (`runs/history.py`) deletes what these rules allow; this module only reads and purges
the export DB.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from export_engine.db.models import Delivery, Export, ExportEvent, ExportStatus

GONE = (ExportStatus.EXPIRED.value, ExportStatus.CANCELED.value)
PURGEABLE = (*GONE, ExportStatus.FAILED.value)


def run_may_go(export_status: str | None, *, run_age: timedelta, failed_history: timedelta) -> bool:
    """Whether a finished run of an export with this status (None: no row) may be deleted."""
    if export_status is None or export_status in GONE:
        return True
    return export_status == ExportStatus.FAILED.value and run_age > failed_history


def export_statuses(sessions: sessionmaker[Session], reference_ids: Iterable[str]) -> dict[str, str]:
    """The status of each export that still has a row."""
    ids = list(set(reference_ids))
    if not ids:
        return {}
    with sessions() as session:
        rows = session.execute(select(Export.reference_id, Export.status).where(Export.reference_id.in_(ids)))
        return {reference_id: status for reference_id, status in rows}


def purge_exports(sessions: sessionmaker[Session], *, audit: timedelta, batch: int = 1000) -> int:
    """Delete finished export rows created more than `audit` ago, with their events and deliveries.

    Only rows with nothing left to serve (EXPIRED, CANCELED, FAILED); one batch per call, one
    transaction, so the sweep never holds many locks for long."""
    with sessions.begin() as session:
        doomed = list(
            session.scalars(
                select(Export.reference_id)
                .where(Export.status.in_(PURGEABLE), Export.created_at < func.now() - audit)
                .order_by(Export.created_at)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        )
        if not doomed:
            return 0
        events = select(ExportEvent.id).where(ExportEvent.reference_id.in_(doomed))
        session.execute(delete(Delivery).where(Delivery.event_id.in_(events)))
        session.execute(delete(ExportEvent).where(ExportEvent.reference_id.in_(doomed)))
        session.execute(delete(Export).where(Export.reference_id.in_(doomed)))
        return len(doomed)
