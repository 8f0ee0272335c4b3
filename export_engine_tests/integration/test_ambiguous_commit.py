"""A completion whose COMMIT reached the server but whose answer never reached the op (a failover, a
pgbouncer restart): the op retries the write, finds its own completion already there, and keeps the
file. Review 2026-12-07 N1: the retry used to take the "canceled or taken over" branch and delete the
object of a COMPLETED export, whose `export.completed` had already been sent.

The export DB, the S3 server and the op are real; the fault is injected in the op's repository, which
commits the completion and then raises the `OperationalError` a dropped connection raises.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from export_engine.core.export_spec import ExportSpec
from export_engine.db.models import ExportEvent
from export_engine.db.session import session_factory
from export_engine.lifecycle import transitions
from export_engine.lifecycle.repository import ExportRepository
from export_engine.runs.resources import ExportDbResource, SourceDatabaseResource
from export_engine_tests.helpers import expected_csv, export_row
from export_engine_tests.integration.test_outages_mid_export import ExportInFlight

pytestmark = pytest.mark.integration


class _CommitThenDrop(ExportRepository):
    """The first completion commits, then its connection "drops" before the answer is read."""

    dropped = False

    def complete(self, reference_id: str, run_id: str, **result) -> bool:  # type: ignore[override]
        done = super().complete(reference_id, run_id, **result)
        if not _CommitThenDrop.dropped:
            _CommitThenDrop.dropped = True
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return done


class _AmbiguousCommitExportDb(ExportDbResource):
    def repository(self) -> ExportRepository:
        return _CommitThenDrop(session_factory(self.url))


def test_a_completion_retried_after_an_ambiguous_commit_keeps_the_file(
    settings, storage, catalog, stack, op_settings
):
    _CommitThenDrop.dropped = False
    export = ExportInFlight(
        settings,
        source=SourceDatabaseResource.from_settings(settings),
        storage=storage,
        export_db=_AmbiguousCommitExportDb(url=settings.database_url),
    )
    row = export.finish()

    assert _CommitThenDrop.dropped  # the fault was hit: the first completion's answer was lost
    assert export.result.success
    assert row.status == "COMPLETED"
    assert export.objects() == [row.s3_key]  # the file the COMPLETED row points to is still there
    body = storage.client.get_object(Bucket=storage.bucket, Key=row.s3_key)["Body"].read()
    assert body == expected_csv(stack.env["SOURCE_ADMIN_URL"], catalog.get("slow"), export.spec)
    assert row.file_size_bytes == len(body)
    with session_factory(settings.database_url)() as session:
        kinds = session.scalars(
            select(ExportEvent.type).where(ExportEvent.reference_id == export.reference_id)
        ).all()
    assert kinds.count("export.completed") == 1  # the retry acknowledged it; it did not complete twice


def test_the_same_completion_written_twice_is_acknowledged_once(settings):
    """The guard itself: a replay of this run's own completion answers True and changes nothing."""
    sessions = session_factory(settings.database_url)
    export = _pending_export(sessions)
    with sessions.begin() as s:
        assert transitions.start(s, export, "run-a", stale_after=timedelta(seconds=30)) is not None
    for _ in range(2):
        with sessions.begin() as s:
            assert transitions.complete(
                s, export, "run-a", s3_key="k-a", row_count=3, file_size_bytes=7, retention=timedelta(hours=1)
            )
    with sessions.begin() as s:  # another run's key, or another run: still refused
        assert not transitions.complete(
            s, export, "run-a", s3_key="k-other", row_count=3, file_size_bytes=7, retention=timedelta(hours=1)
        )
        assert not transitions.complete(
            s, export, "run-b", s3_key="k-a", row_count=3, file_size_bytes=7, retention=timedelta(hours=1)
        )
    with sessions() as session:
        kinds = session.scalars(select(ExportEvent.type).where(ExportEvent.reference_id == export)).all()
    assert kinds.count("export.completed") == 1


def _pending_export(sessions) -> str:
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2019, 1, 31), owner=f"n1-{uuid.uuid4()}")
    ref = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add(export_row(spec, ref, status="PENDING"))
    return ref
