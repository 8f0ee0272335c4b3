"""Retention against the real export DB and S3: files past their life are deleted first, then their
exports (and reuses) become EXPIRED; orphaned objects and abandoned uploads are swept."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from export_engine.core.catalog import load_catalog
from export_engine.core.export_spec import ExportSpec
from export_engine.db.models import Export, ExportStatus
from export_engine.db.session import session_factory
from export_engine.lifecycle.retention import abort_abandoned_uploads, delete_orphaned_objects, expire_exports
from export_engine.pipeline.export import run_export
from export_engine.runs.resources import SourceDatabaseResource
from export_engine_tests.helpers import export_row


def _make_file(settings, storage, spec: ExportSpec) -> tuple[str, str]:
    reference_id = str(uuid.uuid4())
    result = run_export(
        spec,
        spec.object_key(reference_id, "run-1"),
        catalog=load_catalog(settings.catalog_path),
        source=SourceDatabaseResource.from_settings(settings),
        storage=storage,
    )
    return reference_id, result.s3_key


def _statuses(sessions, *refs: str) -> dict[str, str]:
    with sessions() as session:
        return dict(
            session.execute(
                select(Export.reference_id, Export.status).where(Export.reference_id.in_(refs))
            ).all()
        )


def _finished(spec, ref, key, *, expires_in: timedelta, reused_from_ref=None) -> Export:
    now = datetime.now(UTC)
    return export_row(
        spec,
        ref,
        status="COMPLETED",
        s3_key=key,
        completed_at=now,
        object_expires_at=now + expires_in,
        reused_from_ref=reused_from_ref,
    )


def test_files_past_their_life_expire_with_their_reuses_and_younger_ones_stay(settings, storage):
    sessions = session_factory(settings.database_url)
    old_spec = ExportSpec(
        "transactions", date(2019, 4, 1), date(2019, 4, 30), owner=f"retention-{uuid.uuid4()}"
    )
    new_spec = ExportSpec("transactions", date(2019, 5, 1), date(2019, 5, 31), owner=old_spec.owner)
    old_ref, old_key = _make_file(settings, storage, old_spec)
    new_ref, new_key = _make_file(settings, storage, new_spec)
    reuse_ref = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add_all(
            [
                _finished(old_spec, old_ref, old_key, expires_in=-timedelta(minutes=1)),
                _finished(
                    old_spec, reuse_ref, old_key, expires_in=-timedelta(minutes=1), reused_from_ref=old_ref
                ),
                _finished(new_spec, new_ref, new_key, expires_in=timedelta(hours=2)),
            ]
        )

    result = expire_exports(sessions, storage)

    assert result.objects_deleted >= 1 and result.exports_expired >= 2
    assert _statuses(sessions, old_ref, reuse_ref, new_ref) == {
        old_ref: ExportStatus.EXPIRED.value,
        reuse_ref: ExportStatus.EXPIRED.value,
        new_ref: ExportStatus.COMPLETED.value,
    }
    assert not storage.exists(old_key)
    assert storage.exists(new_key)


def test_a_failed_delete_changes_nothing_and_the_next_sweep_finishes_it(settings, storage):
    """Delete first, then record: S3 down leaves the export COMPLETED with its file, never EXPIRED
    with a live object (which nothing would ever delete)."""
    sessions = session_factory(settings.database_url)
    spec = ExportSpec("transactions", date(2019, 3, 1), date(2019, 3, 31), owner=f"retention-{uuid.uuid4()}")
    ref, key = _make_file(settings, storage, spec)
    with sessions.begin() as session:
        session.add(_finished(spec, ref, key, expires_in=-timedelta(minutes=1)))
    unreachable = storage.model_copy(update={"endpoint_url": "http://127.0.0.1:9"})  # nothing listens

    expire_exports(sessions, unreachable)

    assert _statuses(sessions, ref) == {ref: "COMPLETED"}
    assert storage.exists(key)
    expire_exports(sessions, storage)
    assert _statuses(sessions, ref) == {ref: "EXPIRED"}
    assert not storage.exists(key)


def test_orphaned_objects_are_deleted_and_referenced_or_in_flight_ones_kept(settings, storage):
    sessions = session_factory(settings.database_url)
    spec = ExportSpec("transactions", date(2019, 2, 1), date(2019, 2, 28), owner=f"orphans-{uuid.uuid4()}")
    refs = {name: str(uuid.uuid4()) for name in ("completed", "running", "failed", "no row")}
    keys = {name: spec.object_key(ref, "run-1") for name, ref in refs.items()}
    loser = spec.object_key(refs["completed"], "run-0")  # a second run's object of a completed export
    for key in (*keys.values(), loser):
        storage.client.put_object(Bucket=storage.bucket, Key=key, Body=b"x")
    with sessions.begin() as session:
        session.add(_finished(spec, refs["completed"], keys["completed"], expires_in=timedelta(hours=1)))
        session.add(export_row(spec, refs["running"], status="RUNNING"))
        session.add(export_row(spec, refs["failed"], status="FAILED"))

    delete_orphaned_objects(sessions, storage)  # with the default grace: everything here is too young
    for key in (*keys.values(), loser):
        assert storage.exists(key)
    deleted = delete_orphaned_objects(
        sessions,
        storage,
        min_age=timedelta(0),
        prefix=f"exports/transactions/{spec.date_from}_{spec.date_to}/",
    )

    assert deleted >= 3
    survivors = {k for k in (*keys.values(), loser) if storage.exists(k)}
    assert survivors == {keys["completed"], keys["running"]}
    storage.delete(keys["completed"])
    storage.delete(keys["running"])


def test_sweep_aborts_uploads_of_ended_exports_and_keeps_running_ones(settings, storage):
    """Uploads a run could not abort itself (S3 was down when it failed) are aborted once S3 is back."""
    sessions = session_factory(settings.database_url)
    spec = ExportSpec("transactions", date(2019, 6, 1), date(2019, 6, 30), owner=f"sweep-{uuid.uuid4()}")
    refs = {status: str(uuid.uuid4()) for status in ("RUNNING", "FAILED", "CANCELED")}
    refs["no row"] = str(uuid.uuid4())
    with sessions.begin() as session:
        for status in ("RUNNING", "FAILED", "CANCELED"):
            session.add(export_row(spec, refs[status], status=status))
    keys = {status: spec.object_key(ref, "run-1") for status, ref in refs.items()}
    for key in keys.values():
        storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)

    aborted = abort_abandoned_uploads(sessions, storage)

    assert aborted >= 3
    pending = {u["Key"] for u in storage.pending_uploads(prefix=f"exports/transactions/{spec.date_from}_")}
    assert pending == {keys["RUNNING"]}
    storage.abort_pending_uploads(keys["RUNNING"])


def test_bucket_lifecycle_is_a_day_past_the_retention(storage, settings):
    rules = storage.client.get_bucket_lifecycle_configuration(Bucket=storage.bucket)["Rules"]
    (rule,) = [r for r in rules if r["ID"] == "expire-exports"]
    assert settings.retention_hours == 24
    assert rule["Expiration"]["Days"] == settings.lifecycle_expire_days == 2
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 2
    assert rule["Filter"]["Prefix"] == "exports/"


def test_lifecycle_days_follow_retention_hours(settings):
    assert settings.model_copy(update={"retention_hours": 1}).lifecycle_expire_days == 2
    assert settings.model_copy(update={"retention_hours": 72}).lifecycle_expire_days == 4
