"""Which existing file a request may reuse: the database side of the dedup rules (`core/dedup.py`).

A candidate is the newest COMPLETED file of the key whose snapshot started after its data became final
and that lives long enough; it is HEAD-checked outside the key's lock so a slow S3 never holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from export_engine.db.models import Export, ExportStatus
from export_engine.delivery.bucket import S3Storage
from export_engine.lifecycle import transitions


def final_file(session: Session, key: str, final_since: datetime, alive_until: datetime) -> Export | None:
    """The newest file of the key whose snapshot started after its data became final, alive long enough."""
    return session.scalars(
        select(Export)
        .where(
            Export.dedup_key == key,
            Export.status == ExportStatus.COMPLETED.value,
            Export.reused_from_ref.is_(None),
            Export.started_at >= final_since,
            Export.object_expires_at >= alive_until,
        )
        .order_by(Export.started_at.desc())
        .limit(1)
    ).first()


def final_in_flight(session: Session, key: str, final_since: datetime) -> Export | None:
    """An export of the key in flight that was asked for after its data became final."""
    return session.scalars(
        select(Export)
        .where(
            Export.dedup_key == key,
            Export.status.in_(transitions.ACTIVE),
            Export.created_at >= final_since,
        )
        .order_by(Export.created_at.desc())
        .limit(1)
    ).first()


@dataclass(frozen=True)
class Checked:
    s3_key: str
    missing: bool


def checked_candidate(
    session: Session, key: str, storage: S3Storage, final_since: datetime, alive_until: datetime
) -> Checked | None:
    """HEAD the candidate file outside the lock, so a slow S3 never holds the key's lock."""
    with session.begin():
        candidate = final_file(session, key, final_since, alive_until)
    if candidate is None or not candidate.s3_key:
        return None
    return Checked(candidate.s3_key, missing=not storage.exists(candidate.s3_key))
