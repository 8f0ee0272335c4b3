"""Retention: finished files older than the retention are deleted and their exports become EXPIRED.

Files are shared by an export and every reuse of it, so they expire together, keyed by object.
The row update happens under the same advisory lock the gateway takes for the dedup key, so a
request can never reuse a file in the moment between "expired" and "deleted".

The same sweep aborts multipart uploads whose export is no longer PENDING or RUNNING: the ones a
run could not abort itself because S3 was down when it failed (the bucket's lifecycle rule is the
slower backstop, a day later).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from export_engine.db.locks import dedup_lock_id
from export_engine.db.models import ACTIVE_STATUSES, Export, ExportStatus
from export_engine.resources import S3StorageResource

_FINISHED = (ExportStatus.COMPLETED.value, ExportStatus.SUPERSEDED.value)
_EXPORT_KEY = re.compile(r"^exports/.+/(?P<reference_id>[0-9a-f-]{36})\.[a-z.]+$")


@dataclass(frozen=True)
class RetentionResult:
    exports_expired: int
    objects_deleted: int


def expire_exports(
    sessions: sessionmaker[Session], storage: S3StorageResource, *, retention: timedelta, batch: int = 500
) -> RetentionResult:
    cutoff = datetime.now(UTC) - retention
    with sessions() as session:
        candidates = session.execute(
            select(Export.s3_key, Export.dedup_key)
            .where(
                Export.status.in_(_FINISHED), Export.reused_from_ref.is_(None), Export.completed_at < cutoff
            )
            .limit(batch)
        ).all()
    expired = deleted = 0
    for s3_key, dedup_key in candidates:
        with sessions.begin() as session:
            session.execute(select(func.pg_advisory_xact_lock(dedup_lock_id(dedup_key))))
            expired += session.execute(
                update(Export)
                .where(Export.s3_key == s3_key, Export.status.in_(_FINISHED))
                .values(status=ExportStatus.EXPIRED.value)
            ).rowcount
        storage.delete(s3_key)
        deleted += 1
    return RetentionResult(expired, deleted)


def abort_abandoned_uploads(sessions: sessionmaker[Session], storage: S3StorageResource) -> int:
    """Abort every pending upload under `exports/` whose export is not PENDING or RUNNING."""
    uploads = storage.pending_uploads(prefix="exports/")
    owners = {
        upload["UploadId"]: match["reference_id"]
        for upload in uploads
        if (match := _EXPORT_KEY.match(upload["Key"]))
    }
    with sessions() as session:
        active = set(
            session.scalars(
                select(Export.reference_id).where(
                    Export.reference_id.in_(set(owners.values())),
                    Export.status.in_([s.value for s in ACTIVE_STATUSES]),
                )
            )
        )
    aborted = 0
    for upload in uploads:
        if owners.get(upload["UploadId"]) not in active:
            storage.abort_upload(upload["Key"], upload["UploadId"])
            aborted += 1
    return aborted
