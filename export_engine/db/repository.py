"""Status transitions of an export, each one short transaction guarded by the current status.

The guards make every transition idempotent and safe against races: a late progress update never
overwrites a terminal status, and a retried run cannot complete an export twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from export_engine.db.models import ACTIVE_STATUSES, Export, ExportStatus

_ACTIVE = [s.value for s in ACTIVE_STATUSES]


def _now() -> datetime:
    return datetime.now(UTC)


class ExportRepository:
    """The engine's view of the `exports` table."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, reference_id: str) -> Export | None:
        with self._sessions() as session:
            return session.get(Export, reference_id)

    def mark_running(self, reference_id: str, run_id: str) -> bool:
        """PENDING/RUNNING → RUNNING for this run; False if the export already ended (e.g. canceled)."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Export)
                .where(Export.reference_id == reference_id, Export.status.in_(_ACTIVE))
                .values(
                    status=ExportStatus.RUNNING.value,
                    dagster_run_id=run_id,
                    started_at=_now(),
                    heartbeat_at=_now(),
                    rows_written=0,
                    error=None,
                    attempts=Export.attempts + 1,
                )
            )
            return result.rowcount == 1

    def heartbeat(self, reference_id: str) -> bool:
        """False once the export is no longer RUNNING (canceled or failed elsewhere): time to stop."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Export)
                .where(Export.reference_id == reference_id, Export.status == ExportStatus.RUNNING.value)
                .values(heartbeat_at=_now())
            )
            return result.rowcount == 1

    def stalled(self, older_than_seconds: float, limit: int = 100) -> list[Export]:
        """RUNNING exports whose run worker has not sent a heartbeat for a while (killed or frozen)."""
        cutoff = _now() - timedelta(seconds=older_than_seconds)
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(Export)
                    .where(Export.status == ExportStatus.RUNNING.value, Export.heartbeat_at < cutoff)
                    .limit(limit)
                )
            )

    def record_progress(self, reference_id: str, rows_written: int) -> bool:
        """Like `heartbeat`: False once the export is no longer RUNNING."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Export)
                .where(Export.reference_id == reference_id, Export.status == ExportStatus.RUNNING.value)
                .values(rows_written=rows_written)
            )
            return result.rowcount == 1

    def mark_completed(self, reference_id: str, *, s3_key: str, row_count: int, file_size_bytes: int) -> bool:
        """RUNNING → COMPLETED, and older COMPLETED exports of the same key → SUPERSEDED, atomically."""
        with self._sessions.begin() as session:
            export = session.execute(
                select(Export).where(Export.reference_id == reference_id).with_for_update()
            ).scalar_one()
            if export.status != ExportStatus.RUNNING.value:
                return False
            now = _now()
            export.status = ExportStatus.COMPLETED.value
            export.s3_key = s3_key
            export.row_count = row_count
            export.rows_written = row_count
            export.file_size_bytes = file_size_bytes
            export.completed_at = now
            session.execute(
                update(Export)
                .where(
                    Export.dedup_key == export.dedup_key,
                    Export.status == ExportStatus.COMPLETED.value,
                    Export.reference_id != reference_id,
                    Export.created_at <= export.created_at,
                )
                .values(status=ExportStatus.SUPERSEDED.value)
            )
            return True

    def mark_failed(self, reference_id: str, error: str) -> bool:
        with self._sessions.begin() as session:
            result = session.execute(
                update(Export)
                .where(Export.reference_id == reference_id, Export.status.in_(_ACTIVE))
                .values(status=ExportStatus.FAILED.value, error=error[:4000], completed_at=_now())
            )
            return result.rowcount == 1

    def set_run_id(self, reference_id: str, run_id: str) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Export)
                .where(Export.reference_id == reference_id, Export.dagster_run_id.is_(None))
                .values(dagster_run_id=run_id)
            )
