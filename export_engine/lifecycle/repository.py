"""The engine's view of the `exports` table: each call is one short transaction of `lifecycle`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from export_engine.db.models import Export
from export_engine.lifecycle import creation, transitions


class ExportRepository:
    """Fenced by run id: a run can only move an export it holds (see `lifecycle`)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, reference_id: str) -> Export | None:
        with self._sessions() as session:
            return session.get(Export, reference_id)

    def active(self, limit: int = 200) -> list[Export]:
        """PENDING/RUNNING exports, oldest first (the reconciler's work list)."""
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(Export)
                    .where(Export.status.in_(transitions.ACTIVE))
                    .order_by(Export.created_at)
                    .limit(limit)
                )
            )

    def start(
        self, reference_id: str, run_id: str, *, stale_after: timedelta, finished_holder: str | None
    ) -> transitions.Claim | None:
        with self._sessions.begin() as session:
            return transitions.start(
                session, reference_id, run_id, stale_after=stale_after, finished_holder=finished_holder
            )

    def beat(
        self,
        reference_id: str,
        run_id: str,
        rows_written: int | None = None,
        *,
        parts: transitions.Parts | None = None,
    ) -> bool:
        with self._sessions.begin() as session:
            return transitions.beat(session, reference_id, run_id, rows_written, parts=parts)

    def complete(
        self,
        reference_id: str,
        run_id: str,
        *,
        s3_key: str,
        row_count: int,
        file_size_bytes: int,
        retention: timedelta,
        parts: transitions.Parts | None = None,
    ) -> bool:
        with self._sessions.begin() as session:
            return transitions.complete(
                session,
                reference_id,
                run_id,
                s3_key=s3_key,
                row_count=row_count,
                file_size_bytes=file_size_bytes,
                retention=retention,
                parts=parts,
            )

    def fail(self, reference_id: str, reason: str, *, run_id: str | None) -> bool:
        with self._sessions.begin() as session:
            return transitions.fail(session, reference_id, reason, run_id=run_id)

    def record_run(self, reference_id: str, run_id: str) -> bool:
        with self._sessions.begin() as session:
            return creation.record_run(session, reference_id, run_id)
