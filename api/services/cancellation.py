"""`DELETE /export/{id}`: stop an export in flight, or delete a finished file.

- PENDING / RUNNING → CANCELED; the Dagster run is terminated and the op aborts its multipart upload
  (an op that finishes in the same instant sees the export is no longer RUNNING and deletes its object).
- COMPLETED / SUPERSEDED → the object is deleted and every export sharing it becomes EXPIRED
  (they all belong to the same owner: the owner is part of the dedup key).
- Anything else has nothing left to stop: 409.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from api.errors import ExportConflict
from api.launcher import LaunchError, RunLauncher
from api.security import Principal
from api.services.exports import get_export
from export_engine.db.locks import dedup_lock_id
from export_engine.db.models import ACTIVE_STATUSES, Export, ExportStatus
from export_engine.resources import S3StorageResource

log = logging.getLogger(__name__)

_FINISHED = (ExportStatus.COMPLETED.value, ExportStatus.SUPERSEDED.value)


def cancel_export(
    *,
    session: Session,
    principal: Principal,
    reference_id: str,
    launcher: RunLauncher,
    storage: S3StorageResource,
) -> Export:
    with session.begin():
        export = get_export(session=session, principal=principal, reference_id=reference_id)
        # The dedup key's lock first, then the row: the order create_export and retention use too.
        session.execute(select(func.pg_advisory_xact_lock(dedup_lock_id(export.dedup_key))))
        current = session.execute(
            select(Export).where(Export.reference_id == export.reference_id).with_for_update()
        ).scalar_one()
        status = current.status
        if status in [s.value for s in ACTIVE_STATUSES]:
            current.status = ExportStatus.CANCELED.value
            current.error = "canceled by its owner"
            current.completed_at = datetime.now(UTC)
        elif status in _FINISHED and current.s3_key:
            session.execute(
                update(Export)
                .where(Export.s3_key == current.s3_key, Export.status.in_(_FINISHED))
                .values(status=ExportStatus.EXPIRED.value)
            )
        else:
            raise ExportConflict(
                f"export {export.reference_id!r} is {status}; there is nothing to cancel or delete"
            )
        run_id, s3_key = current.dagster_run_id, current.s3_key

    if status in _FINISHED:
        storage.delete(s3_key)
        log.info("export file deleted", extra={"reference_id": export.reference_id, "s3_key": s3_key})
    elif run_id:
        try:
            launcher.terminate(run_id)
        except LaunchError as exc:  # the run may have ended on its own; the op respects CANCELED anyway
            log.warning("terminate failed: %s", exc, extra={"reference_id": export.reference_id})
    log.info("export canceled", extra={"reference_id": export.reference_id, "previous_status": status})
    session.refresh(current)
    return current
