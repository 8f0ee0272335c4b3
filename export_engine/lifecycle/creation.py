"""Creating an export's row: a new PENDING export, or a COMPLETED reuse of an existing file.

Both append their lifecycle events in the caller's transaction, which holds the dedup key's advisory
lock (`db.locks.lock_dedup_key`), so two identical requests cannot both create.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, func, update
from sqlalchemy.orm import Session

from export_engine.db import events
from export_engine.db.models import Export, ExportStatus
from export_engine.lifecycle.transitions import ACTIVE

if TYPE_CHECKING:
    from export_engine.core.export_spec import ExportSpec
    from export_engine.core.package_spec import PackageSpec


def create_pending(session: Session, spec: ExportSpec | PackageSpec) -> Export:
    export = _row(spec, ExportStatus.PENDING)
    session.add(export)
    session.flush()
    events.append(session, export, events.EXPORT_CREATED)
    return export


def create_reuse(session: Session, spec: ExportSpec | PackageSpec, source: Export) -> Export:
    """A COMPLETED row pointing at `source`'s file; it inherits the file's snapshot time and lifetime."""
    export = _row(spec, ExportStatus.COMPLETED)
    export.reused_from_ref = source.reference_id
    export.s3_key = source.s3_key
    export.row_count = source.row_count
    export.rows_written = source.row_count or 0
    export.file_size_bytes = source.file_size_bytes
    export.started_at = source.started_at
    export.completed_at = func.now()
    export.object_expires_at = source.object_expires_at
    export.parts = source.parts
    session.add(export)
    session.flush()
    session.refresh(export)  # completed_at = now() comes back from the database
    events.append(session, export, events.EXPORT_CREATED)
    events.append(session, export, events.EXPORT_COMPLETED)
    return export


def _row(spec: ExportSpec | PackageSpec, status: ExportStatus) -> Export:
    return Export(
        reference_id=str(uuid.uuid4()),
        kind=spec.kind,
        dedup_key=spec.dedup_key,
        owner=spec.owner,
        table_name=spec.table_name,
        date_from=spec.date_from,
        date_to=spec.date_to,
        format=spec.format,
        params=spec.canonical(),
        status=status.value,
    )


def record_run(session: Session, reference_id: str, run_id: str) -> bool:
    """Remember the run submitted for an export that has none yet (the first submitter wins).

    A Core statement on the table: the ORM's bulk-update path cost the gateway ~3 ms of CPU per export
    (py-spy), and no caller reads the run id back from the session."""
    table = cast(Table, Export.__table__)
    exports = table.c
    result = session.execute(
        update(table)
        .where(
            exports.reference_id == reference_id,
            exports.status.in_(ACTIVE),
            exports.dagster_run_id.is_(None),
        )
        .values(dagster_run_id=run_id)
        .returning(exports.reference_id)
    )
    return result.first() is not None
