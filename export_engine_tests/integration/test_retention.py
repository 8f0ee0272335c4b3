"""Retention against the real export DB and S3: old files are deleted, their exports (and reuses) EXPIRED."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from export_engine.catalog import load_catalog
from export_engine.db.models import Export, ExportStatus
from export_engine.db.session import session_factory
from export_engine.engine import run_export
from export_engine.request import ExportSpec
from export_engine.resources import SourceDatabaseResource
from export_engine.retention import abort_abandoned_uploads, expire_exports


def _export_row(
    spec: ExportSpec,
    reference_id: str,
    *,
    status: str,
    s3_key: str,
    completed_at: datetime,
    reused_from_ref: str | None = None,
) -> Export:
    return Export(
        reference_id=reference_id,
        dedup_key=spec.dedup_key,
        owner=spec.owner,
        table_name=spec.table_name,
        date_from=spec.date_from,
        date_to=spec.date_to,
        format=spec.format,
        params=spec.canonical(),
        status=status,
        s3_key=s3_key,
        completed_at=completed_at,
        reused_from_ref=reused_from_ref,
        created_at=completed_at,
    )


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


def test_old_files_expire_with_their_reuses_and_recent_ones_stay(settings, storage):
    sessions = session_factory(settings.database_url)
    now = datetime.now(UTC)
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
                _export_row(
                    old_spec,
                    old_ref,
                    status="COMPLETED",
                    s3_key=old_key,
                    completed_at=now - timedelta(hours=30),
                ),
                _export_row(
                    old_spec,
                    reuse_ref,
                    status="COMPLETED",
                    s3_key=old_key,
                    completed_at=now - timedelta(hours=1),
                    reused_from_ref=old_ref,
                ),
                _export_row(
                    new_spec,
                    new_ref,
                    status="COMPLETED",
                    s3_key=new_key,
                    completed_at=now - timedelta(hours=2),
                ),
            ]
        )

    result = expire_exports(sessions, storage, retention=timedelta(hours=24))

    assert result.objects_deleted >= 1 and result.exports_expired >= 2
    with sessions() as session:
        statuses = dict(
            session.execute(
                select(Export.reference_id, Export.status).where(
                    Export.reference_id.in_([old_ref, reuse_ref, new_ref])
                )
            ).all()
        )
    assert statuses == {
        old_ref: ExportStatus.EXPIRED.value,
        reuse_ref: ExportStatus.EXPIRED.value,
        new_ref: ExportStatus.COMPLETED.value,
    }
    assert not storage.exists(old_key)
    assert storage.exists(new_key)


def test_sweep_aborts_uploads_of_ended_exports_and_keeps_running_ones(settings, storage):
    """Uploads a run could not abort itself (S3 was down when it failed) are aborted once S3 is back."""
    sessions = session_factory(settings.database_url)
    spec = ExportSpec("transactions", date(2019, 6, 1), date(2019, 6, 30), owner=f"sweep-{uuid.uuid4()}")
    refs = {status: str(uuid.uuid4()) for status in ("RUNNING", "FAILED", "CANCELED")}
    refs["no row"] = str(uuid.uuid4())
    with sessions.begin() as session:
        for status in ("RUNNING", "FAILED", "CANCELED"):
            row = _export_row(spec, refs[status], status=status, s3_key=None, completed_at=datetime.now(UTC))
            session.add(row)
    keys = {status: spec.object_key(ref) for status, ref in refs.items()}
    for key in keys.values():
        storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)

    aborted = abort_abandoned_uploads(sessions, storage)

    assert aborted >= 3
    pending = {u["Key"] for u in storage.pending_uploads(prefix=spec.object_key("")[: -len(".csv")])}
    assert pending == {keys["RUNNING"]}
    storage.abort_pending_uploads(keys["RUNNING"])


def test_bucket_has_the_lifecycle_backstop(storage):
    rules = storage.client.get_bucket_lifecycle_configuration(Bucket=storage.bucket)["Rules"]
    (rule,) = [r for r in rules if r["ID"] == "expire-exports"]
    assert rule["Expiration"]["Days"] == 1
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    assert rule["Filter"]["Prefix"] == "exports/"
