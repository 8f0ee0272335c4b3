"""`/export` routes: parse, call one service function, shape the answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from starlette.convertors import Convertor, register_url_convertor

from api.background_submission import submit_after_answer
from api.deps import CatalogDep, LauncherDep, PrincipalDep, SessionDep, SettingsDep, StorageDep
from api.errors import ErrorBody
from api.openapi import bearer, errors
from api.schemas import ExportCreated, ExportPage, ExportStatusName, ExportView
from api.services.cancellation import cancel_export
from api.services.date_range import DatedExportRequest
from api.services.export_reads import (
    created_answer,
    download_location,
    get_export,
    list_exports,
    signed_download,
)
from api.services.exports import ReusePolicy, create_export, spec_for
from api.services.streams import check_pdf_rows
from api.source_lookups import check_owned_values, fill_progress
from export_engine.core.export_spec import ExportSpec
from export_engine.db.models import Export, ExportStatus
from export_engine.db.session import db_now
from export_engine.delivery.bucket import S3Storage

router = APIRouter(tags=["exports"], dependencies=[Depends(bearer)])


class _ExportId(Convertor[str]):
    """Any path segment but `stream`: `/export/stream` is the stream's path (POST only), so GET or
    DELETE on it is a 405 naming POST, not a 404 for an export called "stream"."""

    regex = "(?!stream$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("export_id", _ExportId())


@router.post(
    "/export",
    response_model=ExportCreated,
    response_model_exclude_none=True,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {
            "model": ExportCreated,
            "description": "reused a finished file or attached to a running export",
        },
        **errors(401, 422, 503),
        429: {
            "model": ErrorBody,
            "description": "the owner already has OWNER_ACTIVE_EXPORT_LIMIT exports PENDING or RUNNING; "
            "retry after `Retry-After` seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
)
def post_export(
    body: DatedExportRequest,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    principal: PrincipalDep,
    launcher: LauncherDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> ExportCreated:
    if body.format == "pdf":  # a statement has a row limit: refuse now, not with a FAILED export later
        dataset, spec = spec_for(catalog, principal, body)
        check_pdf_rows(dataset=dataset, spec=spec, source=request.app.state.source)
    check_owned_values(
        body, owner=principal.subject, catalog=catalog, lookups=request.app.state.source_lookups
    )
    result = create_export(
        session=session,
        principal=principal,
        request=body,
        storage=storage,
        catalog=catalog,
        policy=ReusePolicy.from_settings(settings),
        owner_limit=settings.owner_active_export_limit,
    )
    submit_after_answer(background, request, launcher, result)  # a burst never queues on Dagster's webserver
    if result.outcome != "created":
        response.status_code = status.HTTP_200_OK
    status_url = f"/export/{result.export.reference_id}"
    response.headers["Location"] = status_url
    return ExportCreated(
        **created_answer(
            result,
            status_url=status_url,
            storage=storage,
            ttl_seconds=settings.presign_ttl_seconds,
            session=session,
        )
    )


@router.get(
    "/export", response_model=ExportPage, response_model_exclude_none=True, responses=errors(401, 422, 503)
)
def list_my_exports(
    session: SessionDep,
    principal: PrincipalDep,
    storage: StorageDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    status: ExportStatusName | None = None,
) -> ExportPage:
    page = list_exports(session=session, principal=principal, limit=limit, cursor=cursor, status=status)
    now = _db_now(session)
    return ExportPage(
        items=[
            _view(e, storage=storage, ttl_seconds=settings.presign_ttl_seconds, now=now) for e in page.exports
        ],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/export/{reference_id:export_id}",
    response_model=ExportView,
    response_model_exclude_none=True,
    responses=errors(401, 404, 503),
)
@router.get(
    "/export/{reference_id}/status",
    response_model=ExportView,
    response_model_exclude_none=True,
    responses=errors(401, 404, 503),
    summary="Read Export (alias)",
    description="The same answer as `GET /export/{reference_id}` (the path seeds 003 and 004 poll).",
)
def read_export(
    reference_id: str,
    request: Request,
    catalog: CatalogDep,
    session: SessionDep,
    principal: PrincipalDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> ExportView:
    export = get_export(session=session, principal=principal, reference_id=reference_id)
    view = _view(export, storage=storage, ttl_seconds=settings.presign_ttl_seconds, now=_db_now(session))
    fill_progress(view, export, catalog=catalog, lookups=request.app.state.source_lookups)
    return view


@router.get(
    "/export/{reference_id}/download",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={
        302: {"description": "redirect to a freshly signed URL of the file"},
        **errors(401, 404, 409, 410, 503),
    },
)
def download_export(
    reference_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> RedirectResponse:
    url = download_location(
        session=session,
        principal=principal,
        reference_id=reference_id,
        storage=storage,
        ttl_seconds=settings.presign_ttl_seconds,
    )
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND, headers={"Cache-Control": "no-store"})


@router.delete(
    "/export/{reference_id:export_id}",
    response_model=ExportView,
    response_model_exclude_none=True,
    responses=errors(401, 404, 409, 503),
)
def delete_export(
    reference_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    launcher: LauncherDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> ExportView:
    """Cancel an export in flight (CANCELED) or delete a finished file (EXPIRED)."""
    export = cancel_export(
        session=session, principal=principal, reference_id=reference_id, launcher=launcher, storage=storage
    )
    return _view(export, storage=storage, ttl_seconds=settings.presign_ttl_seconds, now=_db_now(session))


def _db_now(session: SessionDep) -> datetime:
    """Expiries are computed on the database's clock, the one every stored timestamp comes from."""
    return db_now(session)


def _view(export: Export, *, storage: S3Storage, ttl_seconds: int, now: datetime) -> ExportView:
    view = ExportView.model_validate(export, from_attributes=True)
    spec = ExportSpec.from_canonical(export.params)
    view.compression = spec.compression
    view.columns = list(spec.columns) or None
    view.filters = spec.filters.canonical() or None
    if export.status != ExportStatus.RUNNING.value:
        view.rows_written = None
    signed = signed_download(export, storage=storage, ttl_seconds=ttl_seconds, now=now)
    if signed is not None:
        view.download_url, view.expires_at = signed
    return view
