"""Seed 001's `/api/analytics/exports`: its bodies, translated to the one export service.

A thin edge (STYLE.md rule 20): the request becomes an `ExportRequest`, and the same date defaults,
owned-value check, dedup rules, `exports` row and Dagster run follow as for `POST /export`; the
answer is reshaped to the document's keys (`job_id`, lower-case `status`, `dataset_name`, `null`
where unset). Its links live one hour, as the document says (capped by `PRESIGN_TTL_SECONDS` and by
the file's own life). Error bodies are the gateway's one `ErrorBody`, with the document's field names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from api.analytics_schemas import (
    AnalyticsExportCompleted,
    AnalyticsExportCreated,
    AnalyticsExportFailed,
    AnalyticsExportRequest,
    AnalyticsExportStatus,
)
from api.background_submission import submit_after_answer
from api.deps import CatalogDep, LauncherDep, PrincipalDep, SessionDep, SettingsDep, StorageDep
from api.errors import DatasetUnknown, ErrorBody, InvalidRequest
from api.openapi import bearer, errors
from api.schemas import ExportFilters, ExportRequest
from api.services.date_range import dated_request
from api.services.export_reads import get_export, signed_download
from api.services.exports import ReusePolicy, create_export
from api.source_lookups import check_owned_values
from export_engine.core.catalog import Catalog
from export_engine.db.models import Export, ExportStatus
from export_engine.db.session import db_now
from export_engine.delivery.bucket import S3Storage
from export_engine.notifications.messages import dataset_name

PREFIX = "/api/analytics/exports"
LINK_TTL_SECONDS = 3600  # seed 001: "Pre-signed URLs with 1-hour expiry (regenerated on each status request)"
MESSAGES = {
    "created": "Export job created",
    "reused": "Export ready: an identical export's file was reused",
    "attached": "Export job already running: this request joined it",
}
# The core API's field names, as its errors say them, and the document's names for them.
_SEED_NAMES = {
    "filters.account_ids": "account_ids",
    "filters.tag_ids": "tag_ids",
    "table_name": "dataset_id",
    "date_from": "start_date",
    "date_to": "end_date",
}
_CORE_NAME = re.compile(r"\b(" + "|".join(re.escape(n) for n in _SEED_NAMES) + r")\b")

router = APIRouter(prefix=PREFIX, tags=["seed 001: analytics exports"], dependencies=[Depends(bearer)])


@router.post(
    "",
    response_model=AnalyticsExportCreated,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **errors(401, 422, 503),
        429: {
            "model": ErrorBody,
            "description": "OWNER_ACTIVE_EXPORT_LIMIT exports PENDING or RUNNING; retry after `Retry-After`",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
)
def create_analytics_export(
    body: AnalyticsExportRequest,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    principal: PrincipalDep,
    launcher: LauncherDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> AnalyticsExportCreated:
    """Create an export job. 202 also for a reused file (`status` completed) or an export of the same
    request already in flight (its `job_id`): the document knows only 202."""
    with _in_seed_terms():
        core = dated_request(_core_request(body), request, session, principal, catalog, settings)
        check_owned_values(
            core, owner=principal.subject, catalog=catalog, lookups=request.app.state.source_lookups
        )
        result = create_export(
            session=session,
            principal=principal,
            request=core,
            storage=storage,
            catalog=catalog,
            policy=ReusePolicy.from_settings(settings),
            owner_limit=settings.owner_active_export_limit,
        )
    submit_after_answer(background, request, launcher, result)
    response.headers["Location"] = f"{PREFIX}/{result.export.reference_id}"
    return AnalyticsExportCreated(
        job_id=result.export.reference_id,
        status=result.export.status.lower(),
        message=MESSAGES[result.outcome],
    )


@router.get(
    "/{job_id}",
    response_model=AnalyticsExportCompleted | AnalyticsExportFailed | AnalyticsExportStatus,
    responses=errors(401, 404, 503),
)
def read_analytics_export(
    job_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> AnalyticsExportCompleted | AnalyticsExportFailed | AnalyticsExportStatus:
    """Status, and once completed a freshly signed download URL (no auth needed to use it)."""
    export = get_export(session=session, principal=principal, reference_id=job_id)
    return status_body(
        export,
        catalog=catalog,
        storage=storage,
        ttl_seconds=min(LINK_TTL_SECONDS, settings.presign_ttl_seconds),
        session=session,
    )


def status_body(
    export: Export, *, catalog: Catalog, storage: S3Storage, ttl_seconds: int, session: Session
) -> AnalyticsExportCompleted | AnalyticsExportFailed | AnalyticsExportStatus:
    signed = signed_download(export, storage=storage, ttl_seconds=ttl_seconds, now=db_now(session))
    common = {
        "job_id": export.reference_id,
        "status": export.status.lower(),
        "dataset_id": export.table_name,
        "dataset_name": dataset_name(catalog, export.table_name),
        "format": export.format,
        "download_url": signed[0] if signed else None,
        "expires_at": signed[1] if signed else None,
        "created_at": export.created_at,
        "completed_at": export.completed_at,
    }
    if export.status == ExportStatus.COMPLETED.value:
        return AnalyticsExportCompleted(
            **common, row_count=export.row_count or 0, file_size_bytes=export.file_size_bytes or 0
        )
    if export.status in (ExportStatus.FAILED.value, ExportStatus.CANCELED.value):
        return AnalyticsExportFailed(**common, error=export.error)
    return AnalyticsExportStatus(**common)


def _core_request(body: AnalyticsExportRequest) -> ExportRequest:
    return ExportRequest(
        table_name=body.dataset_id,
        date_from=_iso(body.start_date),  # StrictDate takes only the written form
        date_to=_iso(body.end_date),
        format=body.format,
        filters=ExportFilters(account_ids=body.account_ids or None, tag_ids=body.tag_ids or None),
    )


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _seed_terms(text: str) -> str:
    return _CORE_NAME.sub(lambda m: _SEED_NAMES[m.group(1)], text)


@contextmanager
def _in_seed_terms() -> Iterator[None]:
    """A 422 of the core service, re-worded with the document's field names."""
    try:
        yield
    except RequestValidationError as exc:
        raise RequestValidationError(
            [
                {
                    **error,
                    "loc": ("body", _seed_terms(".".join(str(p) for p in error["loc"] if p != "body"))),
                    "msg": _seed_terms(str(error.get("msg", ""))),
                }
                for error in exc.errors()
            ]
        ) from exc
    except (DatasetUnknown, InvalidRequest) as exc:
        renamed = InvalidRequest(_seed_terms(str(exc)))
        if exc.field is not None:
            renamed.field = _SEED_NAMES.get(exc.field, exc.field)
        raise renamed from exc
