"""Creating and reading exports: the dedup rules live here, and the database enforces them.

The rules themselves are `export_engine.dedup.decide`; this module gathers the facts they need
(the latest finished file of the key and whether its object still exists, the export in flight)
and acts on the decision. A REUSE is a new COMPLETED row pointing at the file (`reused_from_ref`);
an ATTACH answers the export in flight; a NEW export is committed PENDING, then handed to Dagster.

Everything runs under a transaction-scoped advisory lock on the key, so concurrent identical
requests serialise in PostgreSQL and exactly one of them creates the export.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.orm import Session

from api.errors import DatasetUnknown, ExportFileGone, ExportNotFound, ExportNotReady, InvalidRequest
from api.launcher import LaunchError, RunLauncher
from api.schemas import ExportRequest
from api.security import Principal
from export_engine.catalog import Catalog
from export_engine.db.locks import dedup_lock_id
from export_engine.db.models import ACTIVE_STATUSES, Export, ExportStatus
from export_engine.dedup import Decision, decide, reuse_allowed
from export_engine.errors import CatalogError, ExportRequestError
from export_engine.request import ExportSpec
from export_engine.resources import S3StorageResource

log = logging.getLogger(__name__)

Outcome = Literal["created", "reused", "attached"]


@dataclass(frozen=True)
class CreateResult:
    export: Export
    outcome: Outcome


def _latest(session: Session, dedup_key: str, statuses: tuple[ExportStatus, ...]) -> Export | None:
    return session.scalars(
        select(Export)
        .where(
            Export.dedup_key == dedup_key,
            Export.status.in_([s.value for s in statuses]),
            Export.reused_from_ref.is_(None),
        )
        .order_by(Export.created_at.desc())
        .limit(1)
    ).first()


def create_export(
    *,
    session: Session,
    principal: Principal,
    request: ExportRequest,
    launcher: RunLauncher,
    storage: S3StorageResource,
    catalog: Catalog,
    today: date,
) -> CreateResult:
    spec = _spec_for(catalog, principal, request)
    key = spec.dedup_key

    with session.begin():
        session.execute(select(func.pg_advisory_xact_lock(dedup_lock_id(key))))
        facts = (
            _Facts.gather(session, key, storage)
            if reuse_allowed(force_refresh=request.force_refresh, date_to=request.date_to, today=today)
            else _Facts()
        )
        decision = decide(
            force_refresh=request.force_refresh,
            date_to=request.date_to,
            today=today,
            file_available=facts.reusable is not None,
            in_flight=facts.active is not None,
        )
        if decision is Decision.REUSE and facts.reusable is not None:
            reuse = _new_export(spec, status=ExportStatus.COMPLETED, source=facts.reusable)
            session.add(reuse)
            log.info(
                "export reused",
                extra={"reference_id": reuse.reference_id, "reused_from_ref": facts.reusable.reference_id},
            )
            return CreateResult(reuse, "reused")
        if decision is Decision.ATTACH and facts.active is not None:
            log.info("export attached", extra={"reference_id": facts.active.reference_id})
            return CreateResult(facts.active, "attached")
        export = _new_export(spec, status=ExportStatus.PENDING)
        session.add(export)

    _submit(session, launcher, export, spec)
    log.info("export created", extra={"reference_id": export.reference_id, "dedup_key": key})
    return CreateResult(export, "created")


def _spec_for(catalog: Catalog, principal: Principal, request: ExportRequest) -> ExportSpec:
    """The canonical spec, checked against the catalog; the owner is always the token's subject."""
    try:
        dataset = catalog.get(request.table_name)
    except CatalogError as exc:
        raise DatasetUnknown(str(exc)) from exc
    try:
        return ExportSpec.for_dataset(
            dataset,
            owner=principal.subject,
            date_from=request.date_from,
            date_to=request.date_to,
            format=request.format,
            compression=request.compression,
            columns=request.columns,
            filters=request.filters.to_filters(),
        )
    except ExportRequestError as exc:
        raise InvalidRequest(str(exc)) from exc


@dataclass
class _Facts:
    reusable: Export | None = None
    active: Export | None = None

    @classmethod
    def gather(cls, session: Session, key: str, storage: S3StorageResource) -> _Facts:
        canonical = _latest(session, key, (ExportStatus.COMPLETED,))
        if canonical is not None and not (canonical.s3_key and storage.exists(canonical.s3_key)):
            # The object is gone (deleted, or expired by the bucket's lifecycle): never serve it again.
            session.execute(
                update(Export)
                .where(Export.dedup_key == key, Export.s3_key == canonical.s3_key)
                .values(status=ExportStatus.EXPIRED.value)
            )
            canonical = None
        return cls(reusable=canonical, active=_latest(session, key, ACTIVE_STATUSES))


def _new_export(spec: ExportSpec, *, status: ExportStatus, source: Export | None = None) -> Export:
    now = datetime.now(UTC)
    export = Export(
        reference_id=str(uuid.uuid4()),
        dedup_key=spec.dedup_key,
        owner=spec.owner,
        table_name=spec.table_name,
        date_from=spec.date_from,
        date_to=spec.date_to,
        format=spec.format,
        params=spec.canonical(),
        status=status.value,
        created_at=now,
    )
    if source is not None:
        export.reused_from_ref = source.reference_id
        export.s3_key = source.s3_key
        export.row_count = source.row_count
        export.rows_written = source.row_count or 0
        export.file_size_bytes = source.file_size_bytes
        export.completed_at = now
    return export


def _submit(session: Session, launcher: RunLauncher, export: Export, spec: ExportSpec) -> None:
    """Hand the committed export to Dagster; if Dagster is unreachable the orphan sensor submits it later."""
    try:
        run_id = launcher.submit(export.reference_id, spec)
    except LaunchError as exc:
        log.warning(
            "run submission deferred to the sensor: %s", exc, extra={"reference_id": export.reference_id}
        )
        return
    with session.begin():
        session.execute(
            update(Export)
            .where(Export.reference_id == export.reference_id, Export.dagster_run_id.is_(None))
            .values(dagster_run_id=run_id)
        )
    export.dagster_run_id = export.dagster_run_id or run_id


def get_export(*, session: Session, principal: Principal, reference_id: str) -> Export:
    """The caller's export; someone else's is indistinguishable from a missing one."""
    try:
        uuid.UUID(reference_id)
    except ValueError:
        raise ExportNotFound(reference_id) from None
    export = session.get(Export, reference_id)
    if export is None or export.owner != principal.subject:
        raise ExportNotFound(reference_id)
    return export


def signed_download(
    export: Export, *, storage: S3StorageResource, ttl_seconds: int
) -> tuple[str, datetime] | None:
    if export.status != ExportStatus.COMPLETED.value or not export.s3_key:
        return None
    spec = ExportSpec.from_canonical(export.params)
    url = storage.presign(
        export.s3_key,
        ttl_seconds=ttl_seconds,
        filename=spec.download_filename,
        content_type=spec.output.content_type,
    )
    return url, datetime.now(UTC) + timedelta(seconds=ttl_seconds)


def download_location(
    *, session: Session, principal: Principal, reference_id: str, storage: S3StorageResource, ttl_seconds: int
) -> str:
    """A freshly signed URL of the caller's finished file; 409 while there is none yet, 410 once gone."""
    export = get_export(session=session, principal=principal, reference_id=reference_id)
    if export.status == ExportStatus.EXPIRED.value:
        raise ExportFileGone(
            f"the file of export {reference_id!r} was deleted (status EXPIRED); request the export again"
        )
    signed = signed_download(export, storage=storage, ttl_seconds=ttl_seconds)
    if signed is None:
        raise ExportNotReady(
            f"export {reference_id!r} is {export.status}; only a COMPLETED export has a file"
        )
    if not storage.exists(export.s3_key or ""):
        raise ExportFileGone(
            f"the file of export {reference_id!r} no longer exists; request the export again"
        )
    return signed[0]


@dataclass(frozen=True)
class ExportPage:
    exports: list[Export]
    next_cursor: str | None


def list_exports(
    *,
    session: Session,
    principal: Principal,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
) -> ExportPage:
    """The caller's exports, newest first, by keyset on (created_at, reference_id) so pages never shift."""
    query = select(Export).where(Export.owner == principal.subject)
    if status is not None:
        query = query.where(Export.status == status)
    if cursor is not None:
        created_at, reference_id = _decode_cursor(cursor)
        query = query.where(tuple_(Export.created_at, Export.reference_id) < (created_at, reference_id))
    rows = list(
        session.scalars(query.order_by(Export.created_at.desc(), Export.reference_id.desc()).limit(limit + 1))
    )
    page, more = rows[:limit], len(rows) > limit
    return ExportPage(page, _encode_cursor(page[-1]) if more else None)


def _encode_cursor(export: Export) -> str:
    raw = json.dumps([export.created_at.isoformat(), export.reference_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, reference_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None or not isinstance(reference_id, str):
            raise ValueError("malformed")
        return moment, reference_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("cursor: not a cursor from this API; pass back `next_cursor` unchanged") from exc
