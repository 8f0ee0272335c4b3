"""`DELETE /export/{id}`: stop an export in flight, or delete a finished file.

- PENDING / RUNNING → CANCELED (one conditional UPDATE, so it can never overwrite a COMPLETED export);
  then the Dagster run is terminated. The op does not depend on that: its next heartbeat sees it no
  longer holds a RUNNING export, stops, aborts its upload, and deletes its object if it had finished.
- COMPLETED / SUPERSEDED → every export sharing the file becomes EXPIRED and the object is deleted,
  in one transaction under the key's lock: if S3 fails, nothing changes and the caller gets a 503.
- Anything else has nothing left to stop: 409.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import ExportConflict
from api.launcher import LaunchError, RunLauncher
from api.security import Principal
from api.services.export_reads import get_export
from export_engine.db.locks import lock_dedup_key
from export_engine.db.models import Export
from export_engine.delivery.bucket import S3Storage
from export_engine.lifecycle import transitions

log = logging.getLogger(__name__)


def cancel_export(
    *,
    session: Session,
    principal: Principal,
    reference_id: str,
    launcher: RunLauncher,
    storage: S3Storage,
    kind: str = "export",
) -> Export:
    with session.begin():
        export = get_export(session=session, principal=principal, reference_id=reference_id, kind=kind)
        lock_dedup_key(session, export.dedup_key)
        canceled = transitions.cancel(session, export.reference_id)
        if canceled is None:
            current = _reread(session, export.reference_id)
            if current.status not in transitions.FINISHED or not current.s3_key:
                raise ExportConflict(
                    f"{kind} {export.reference_id!r} is {current.status}; there is nothing to cancel or delete"
                )
            transitions.expire_object(session, current.s3_key)
            storage.delete(current.s3_key)  # raises: the transaction rolls back, nothing changed
            log.info(
                "export file deleted", extra={"reference_id": export.reference_id, "s3_key": current.s3_key}
            )
        run_id = canceled.dagster_run_id if canceled is not None else None

    if canceled is not None:
        log.info("export canceled", extra={"reference_id": export.reference_id})
        if run_id:
            try:
                launcher.terminate(run_id)
            except LaunchError as exc:  # the run may have ended on its own; the op respects CANCELED anyway
                log.warning("terminate failed: %s", exc, extra={"reference_id": export.reference_id})
    return _reread(session, export.reference_id)


def _reread(session: Session, reference_id: str) -> Export:
    """The row as the database has it now, not the copy in the session's identity map."""
    return session.execute(
        select(Export).where(Export.reference_id == reference_id).execution_options(populate_existing=True)
    ).scalar_one()
