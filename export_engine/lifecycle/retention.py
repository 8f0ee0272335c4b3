"""Retention: files past their promised life are deleted, then their exports become EXPIRED.

- Files are shared by an export and every reuse of it; the life of a file (`object_expires_at`) is
  fixed when it completes and copied by reuses, so the file and every link to it expire together.
- Delete first, then record: the row update and the S3 delete run in one transaction under the dedup
  key's advisory lock (the lock the gateway takes to reuse a file). If the delete fails the
  transaction rolls back and the next sweep tries again; a request never reuses a file in between.
- `abort_abandoned_uploads` aborts multipart uploads whose export is no longer PENDING/RUNNING, and
  `delete_orphaned_objects` deletes objects no finished export points at (a run that lost the race,
  an upload that completed while its export failed). The bucket's lifecycle rule is the slower backstop.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from export_engine.db.locks import lock_dedup_key
from export_engine.db.models import Export
from export_engine.delivery.bucket import S3BucketMethods
from export_engine.lifecycle import transitions

log = logging.getLogger(__name__)

# exports/<table>/<from>_<to>/<reference id>/<run id><ext>  (older files: .../<reference id><ext>)
_EXPORT_KEY = re.compile(r"^exports/.+/(?P<reference_id>[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})[/.]")
ORPHAN_MIN_AGE = timedelta(hours=1)  # never race a run that is completing its upload right now


@dataclass(frozen=True)
class RetentionResult:
    exports_expired: int
    objects_deleted: int


def expire_exports(
    sessions: sessionmaker[Session], storage: S3BucketMethods, *, batch: int = 500
) -> RetentionResult:
    with sessions() as session:
        candidates = session.execute(
            select(Export.s3_key, Export.dedup_key)
            .where(
                Export.status.in_(transitions.FINISHED),
                Export.reused_from_ref.is_(None),
                Export.object_expires_at < func.now(),
            )
            .limit(batch)
        ).all()
    expired = deleted = 0
    for s3_key, dedup_key in candidates:
        if s3_key is None:  # a finished export always has one (a CHECK says so for COMPLETED)
            continue
        try:
            with sessions.begin() as session:
                lock_dedup_key(session, dedup_key)
                rows = transitions.expire_object(session, s3_key)
                storage.delete(s3_key)  # raises: the rows stay as they were, the next sweep retries
        except Exception as exc:
            log.warning("could not expire %s yet: %s", s3_key, exc)
            continue
        expired += len(rows)
        deleted += 1
    return RetentionResult(expired, deleted)


def abort_abandoned_uploads(sessions: sessionmaker[Session], storage: S3BucketMethods) -> int:
    """Abort every pending upload under `exports/` whose export is not PENDING or RUNNING."""
    uploads = storage.pending_uploads(prefix="exports/")
    owners = {
        upload["UploadId"]: match["reference_id"]
        for upload in uploads
        if (match := _EXPORT_KEY.match(upload["Key"]))
    }
    active = _active_references(sessions, set(owners.values()))
    aborted = 0
    for upload in uploads:
        if owners.get(upload["UploadId"]) not in active:
            storage.abort_upload(upload["Key"], upload["UploadId"])
            aborted += 1
    return aborted


def delete_orphaned_objects(
    sessions: sessionmaker[Session],
    storage: S3BucketMethods,
    *,
    min_age: timedelta = ORPHAN_MIN_AGE,
    prefix: str = "exports/",
) -> int:
    """Delete objects under `prefix` that no COMPLETED/SUPERSEDED export points at and whose export
    is not in flight, once they are older than `min_age`."""
    cutoff = datetime.now(UTC) - min_age
    old = [o["Key"] for o in storage.objects(prefix) if o["LastModified"] < cutoff]
    deleted = 0
    for start in range(0, len(old), 500):
        keys = old[start : start + 500]
        references = {k: m["reference_id"] for k in keys if (m := _EXPORT_KEY.match(k))}
        with sessions() as session:
            kept = set(
                session.scalars(
                    select(Export.s3_key).where(
                        Export.s3_key.in_(keys), Export.status.in_(transitions.FINISHED)
                    )
                )
            )
        active = _active_references(sessions, set(references.values()))
        for key in keys:
            if key in kept or references.get(key) in active:
                continue
            storage.delete(key)
            deleted += 1
    return deleted


def _active_references(sessions: sessionmaker[Session], reference_ids: set[str]) -> set[str]:
    if not reference_ids:
        return set()
    with sessions() as session:
        return set(
            session.scalars(
                select(Export.reference_id).where(
                    Export.reference_id.in_(reference_ids), Export.status.in_(transitions.ACTIVE)
                )
            )
        )
