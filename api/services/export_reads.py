"""Reading the caller's exports: one by id, a page of them, a POST's answer and a signed download link.

Someone else's export is indistinguishable from a missing one; pages are keyset cursors on
(created_at, reference_id), so they never shift while new exports arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from api.errors import ExportFileGone, ExportNotFound, ExportNotReady, InvalidRequest
from api.security import Principal
from api.services.exports import CreateResult
from export_engine.db.models import Export, ExportStatus
from export_engine.db.session import db_now
from export_engine.delivery.bucket import S3Storage
from export_engine.notifications.messages import download_link

_HAS_A_FILE = (ExportStatus.COMPLETED.value, ExportStatus.SUPERSEDED.value)


def get_export(*, session: Session, principal: Principal, reference_id: str, kind: str = "export") -> Export:
    """The caller's export (or package); someone else's is indistinguishable from a missing one, and so
    is a row of the other kind."""
    try:
        uuid.UUID(reference_id)
    except ValueError:
        raise ExportNotFound(reference_id, kind) from None
    export = session.get(Export, reference_id)
    if export is None or export.owner != principal.subject or export.kind != kind:
        raise ExportNotFound(reference_id, kind)
    return export


def signed_download(
    export: Export, *, storage: S3Storage, ttl_seconds: int, now: datetime
) -> tuple[str, datetime] | None:
    """A signed URL and its expiry; the link never outlives the file (`object_expires_at`).

    A SUPERSEDED export keeps its file until retention expires it: an older snapshot that finished after
    a newer one was announced `export.completed`, so its owner gets the file (review 2026-12-07 N2)."""
    if export.status not in _HAS_A_FILE:
        return None
    return download_link(export, storage=storage, presign_ttl_seconds=ttl_seconds, now=now)


def created_answer(
    result: CreateResult, *, status_url: str, storage: S3Storage, ttl_seconds: int, session: Session
) -> dict[str, Any]:
    """The fields of a POST's answer, for an export or a package: a reused file carries its freshly
    signed URL at once (no second request)."""
    export = result.export
    signed = (
        signed_download(export, storage=storage, ttl_seconds=ttl_seconds, now=db_now(session))
        if result.outcome == "reused"
        else None
    )
    return {
        "reference_id": export.reference_id,
        "status": export.status,
        "created_at": export.created_at,
        "reused_from_ref": export.reused_from_ref,
        "status_url": status_url,
        "download_url": signed[0] if signed else None,
        "expires_at": signed[1] if signed else None,
    }


def download_location(
    *,
    session: Session,
    principal: Principal,
    reference_id: str,
    storage: S3Storage,
    ttl_seconds: int,
    kind: str = "export",
) -> str:
    """A freshly signed URL of the caller's finished file; 409 while there is none yet, 410 once gone."""
    export = get_export(session=session, principal=principal, reference_id=reference_id, kind=kind)
    if export.status == ExportStatus.EXPIRED.value:
        raise ExportFileGone(
            f"the file of {kind} {reference_id!r} was deleted (status EXPIRED); request the {kind} again"
        )
    if export.status not in _HAS_A_FILE:
        raise ExportNotReady(
            f"{kind} {reference_id!r} is {export.status}; only a COMPLETED {kind} has a file"
        )
    now = db_now(session)
    signed = signed_download(export, storage=storage, ttl_seconds=ttl_seconds, now=now)
    if signed is None or not storage.exists(export.s3_key or ""):
        raise ExportFileGone(
            f"the file of {kind} {reference_id!r} no longer exists; request the {kind} again"
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
    kind: str = "export",
) -> ExportPage:
    """The caller's exports, newest first, by keyset on (created_at, reference_id) so pages never shift."""
    query = select(Export).where(Export.owner == principal.subject, Export.kind == kind)
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
