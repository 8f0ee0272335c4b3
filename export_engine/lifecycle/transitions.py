"""The one writer of an export's status: every transition is a conditional UPDATE ... RETURNING.

```
            ┌──────────── cancel ────────────┐
 PENDING ── start(run) ──▶ RUNNING ── complete(run) ──▶ COMPLETED ── newer file ──▶ SUPERSEDED
    │  ▲                     │ │                            │                          │
    │  └── start(other run,  │ └── fail(run) ──▶ FAILED     └──── expire_object ──▶ EXPIRED ◀┘
    │      holder dead) ◀────┘
    └── cancel / fail ──▶ CANCELED / FAILED
```

- The gateway, the op, the reconciler, retention and DELETE call these functions; nothing else writes
  `status`. Each guard says which transitions are legal, so a race loses loudly (False / None) instead
  of overwriting: a COMPLETED export can never become CANCELED, a late run can never complete twice.
- **Fencing.** The run that holds an export (`dagster_run_id`) is the only one that may beat, complete
  or fail it. Another run takes it over only when the holder is gone: no holder yet, the holder's
  Dagster run has finished, or its heartbeat is older than the timeout.
- **One clock.** Every timestamp is the database's `now()`, so hosts with skewed clocks agree.
- **Events.** Every transition appends its lifecycle event (`db/events.py`) in the same transaction,
  so no status change can happen without its event, nor an event without its change.
- Functions take a `Session` inside a transaction the caller owns (the gateway holds the dedup key's
  advisory lock in the same transaction); `ExportRepository` wraps them for the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from export_engine.db import events
from export_engine.db.models import ACTIVE_STATUSES, FINISHED_STATUSES, Export, ExportStatus

if TYPE_CHECKING:
    pass

Parts = list[dict[str, Any]]  # a package's per-dataset progress, then its manifest's `files`

ACTIVE = [s.value for s in ACTIVE_STATUSES]
FINISHED = [s.value for s in FINISHED_STATUSES]
MAX_ERROR_CHARS = 4000


# -- the run (op) ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """An export a run now holds, and its age by the database's clock (for the runtime deadline)."""

    export: Export
    age_seconds: float


def start(
    session: Session,
    reference_id: str,
    run_id: str,
    *,
    stale_after: timedelta,
    finished_holder: str | None = None,
) -> Claim | None:
    """PENDING/RUNNING → RUNNING held by `run_id`; None if the export ended or a live run holds it.

    `finished_holder` is the run id the caller saw holding the export and knows to be finished in
    Dagster: taking over from it is safe; the guard re-checks it is still the holder.
    """
    may_take = [
        Export.dagster_run_id.is_(None),
        Export.dagster_run_id == run_id,
        Export.heartbeat_at < func.now() - stale_after,
    ]
    if finished_holder:
        may_take.append(Export.dagster_run_id == finished_holder)
    row = session.execute(
        update(Export)
        .where(Export.reference_id == reference_id, Export.status.in_(ACTIVE), or_(*may_take))
        .values(
            status=ExportStatus.RUNNING.value,
            dagster_run_id=run_id,
            started_at=func.now(),
            heartbeat_at=func.now(),
            rows_written=0,
            error=None,
            attempts=Export.attempts + 1,
        )
        .returning(Export, func.extract("epoch", func.now() - Export.created_at))
    ).first()
    if row is None:
        return None
    events.append(session, row[0], events.EXPORT_RUNNING)
    return Claim(row[0], float(row[1]))


def beat(
    session: Session,
    reference_id: str,
    run_id: str,
    rows_written: int | None = None,
    *,
    parts: Parts | None = None,
) -> bool:
    """Heartbeat and progress in one write; False once the run no longer holds a RUNNING export."""
    values: dict[str, object] = {"heartbeat_at": func.now()}
    if rows_written is not None:
        values["rows_written"] = func.greatest(Export.rows_written, rows_written)
    if parts is not None:
        values["parts"] = parts
    result = session.execute(
        update(Export)
        .where(
            Export.reference_id == reference_id,
            Export.status == ExportStatus.RUNNING.value,
            Export.dagster_run_id == run_id,
        )
        .values(**values)
        .returning(Export.reference_id)
    )
    return result.first() is not None


def complete(
    session: Session,
    reference_id: str,
    run_id: str,
    *,
    s3_key: str,
    row_count: int,
    file_size_bytes: int,
    retention: timedelta,
    parts: Parts | None = None,
) -> bool:
    """RUNNING (held by `run_id`) → COMPLETED; older files of the key → SUPERSEDED, atomically.

    Idempotent: True also when this run's completion with this `s3_key` is already recorded. A retry
    after an ambiguous COMMIT (the server committed, the answer was lost) must not read as "canceled or
    taken over", or the op would delete the file of a COMPLETED export (review 2026-12-07 N1).
    """
    extra: dict[str, object] = {"parts": parts} if parts is not None else {}
    done = session.execute(
        update(Export)
        .where(
            Export.reference_id == reference_id,
            Export.status == ExportStatus.RUNNING.value,
            Export.dagster_run_id == run_id,
        )
        .values(
            status=ExportStatus.COMPLETED.value,
            s3_key=s3_key,
            row_count=row_count,
            rows_written=row_count,
            file_size_bytes=file_size_bytes,
            completed_at=func.now(),
            object_expires_at=func.now() + retention,
            **extra,
        )
        .returning(Export)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if done is None:
        return _already_completed(session, reference_id, run_id, s3_key)
    same_key = (
        Export.dedup_key == done.dedup_key,
        Export.status == ExportStatus.COMPLETED.value,
        Export.reference_id != reference_id,
    )
    superseded = session.execute(
        update(Export)
        .where(*same_key, Export.started_at <= done.started_at)
        .values(status=ExportStatus.SUPERSEDED.value)
        .returning(Export)
        .execution_options(populate_existing=True)
    ).scalars()
    for older in list(superseded):
        events.append(session, older, events.EXPORT_SUPERSEDED)
    newer = session.scalar(
        select(Export.reference_id).where(*same_key, Export.started_at > done.started_at).limit(1)
    )
    # Completed, even when superseded below: its owner asked for this file and gets it.
    events.append(session, done, events.EXPORT_COMPLETED)
    if newer is not None:  # a newer snapshot finished first: it stays the key's file
        late = session.execute(
            update(Export)
            .where(Export.reference_id == reference_id)
            .values(status=ExportStatus.SUPERSEDED.value)
            .returning(Export)
            .execution_options(populate_existing=True)
        ).scalar_one()
        events.append(session, late, events.EXPORT_SUPERSEDED)
    return True


def _already_completed(session: Session, reference_id: str, run_id: str, s3_key: str) -> bool:
    recorded = session.scalar(
        select(Export.reference_id).where(
            Export.reference_id == reference_id,
            Export.dagster_run_id == run_id,
            Export.s3_key == s3_key,
            Export.status.in_(FINISHED),
        )
    )
    return recorded is not None


def fail(session: Session, reference_id: str, reason: str, *, run_id: str | None) -> bool:
    """PENDING/RUNNING → FAILED, only while `run_id` (None: no run yet) still holds the export."""
    result = session.execute(
        update(Export)
        .where(
            Export.reference_id == reference_id,
            Export.status.in_(ACTIVE),
            Export.dagster_run_id.is_not_distinct_from(run_id),
        )
        .values(status=ExportStatus.FAILED.value, error=reason[:MAX_ERROR_CHARS], completed_at=func.now())
        .returning(Export)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if result is None:
        return False
    events.append(session, result, events.EXPORT_FAILED)
    return True


# -- the owner and retention (gateway, schedule) -----------------------------------------------------
def cancel(session: Session, reference_id: str) -> Export | None:
    """PENDING/RUNNING → CANCELED; None if it had already ended (the caller re-reads the row)."""
    canceled = session.execute(
        update(Export)
        .where(Export.reference_id == reference_id, Export.status.in_(ACTIVE))
        .values(status=ExportStatus.CANCELED.value, error="canceled by its owner", completed_at=func.now())
        .returning(Export)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if canceled is not None:
        events.append(session, canceled, events.EXPORT_CANCELED)
    return canceled


def expire_object(session: Session, s3_key: str) -> list[str]:
    """COMPLETED/SUPERSEDED → EXPIRED for every export sharing the file; returns their reference ids.

    Call it in the transaction that deletes the object, before committing: if the delete fails the
    rows stay as they were and the next attempt finds them again.
    """
    expired = list(
        session.execute(
            update(Export)
            .where(Export.s3_key == s3_key, Export.status.in_(FINISHED))
            .values(status=ExportStatus.EXPIRED.value)
            .returning(Export)
            .execution_options(populate_existing=True)
        ).scalars()
    )
    for export in expired:
        events.append(session, export, events.EXPORT_EXPIRED)
    return [export.reference_id for export in expired]
