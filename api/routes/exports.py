"""`/export` routes: parse, call one service function, shape the answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from api.deps import CatalogDep, LauncherDep, PrincipalDep, SessionDep, SettingsDep, StorageDep
from api.schemas import ExportCreated, ExportPage, ExportRequest, ExportStatusName, ExportView
from api.services.cancellation import cancel_export
from api.services.exports import create_export, download_location, get_export, list_exports, signed_download
from api.source_lookups import check_owned_values, fill_progress
from export_engine.db.models import Export, ExportStatus
from export_engine.request import ExportSpec
from export_engine.resources import S3StorageResource

router = APIRouter(tags=["exports"])


@router.post(
    "/export",
    response_model=ExportCreated,
    response_model_exclude_none=True,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": ExportCreated, "description": "reused a finished file or attached to a running export"}
    },
)
def post_export(
    body: ExportRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    launcher: LauncherDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> ExportCreated:
    today = datetime.now(ZoneInfo(settings.business_timezone)).date()
    check_owned_values(
        body, owner=principal.subject, catalog=catalog, lookups=request.app.state.source_lookups
    )
    result = create_export(
        session=session,
        principal=principal,
        request=body,
        launcher=launcher,
        storage=storage,
        catalog=catalog,
        today=today,
    )
    if result.outcome != "created":
        response.status_code = status.HTTP_200_OK
    export = result.export
    signed = signed_download(export, storage=storage, ttl_seconds=settings.presign_ttl_seconds)
    return ExportCreated(
        reference_id=export.reference_id,
        status=export.status,
        created_at=export.created_at,
        reused_from_ref=export.reused_from_ref,
        download_url=signed[0] if signed else None,
        expires_at=signed[1] if signed else None,
    )


@router.get("/export", response_model=ExportPage, response_model_exclude_none=True)
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
    return ExportPage(
        items=[_view(e, storage=storage, ttl_seconds=settings.presign_ttl_seconds) for e in page.exports],
        next_cursor=page.next_cursor,
    )


@router.get("/export/{reference_id}", response_model=ExportView, response_model_exclude_none=True)
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
    view = _view(export, storage=storage, ttl_seconds=settings.presign_ttl_seconds)
    fill_progress(view, export, catalog=catalog, lookups=request.app.state.source_lookups)
    return view


@router.get(
    "/export/{reference_id}/download",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={302: {"description": "redirect to a freshly signed URL of the file"}},
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


@router.delete("/export/{reference_id}", response_model=ExportView, response_model_exclude_none=True)
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
    return _view(export, storage=storage, ttl_seconds=settings.presign_ttl_seconds)


def _view(export: Export, *, storage: S3StorageResource, ttl_seconds: int) -> ExportView:
    view = ExportView.model_validate(export, from_attributes=True)
    spec = ExportSpec.from_canonical(export.params)
    view.compression = spec.compression
    view.columns = list(spec.columns) or None
    view.filters = spec.filters.canonical() or None
    if export.status != ExportStatus.RUNNING.value:
        view.rows_written = None
    signed = signed_download(export, storage=storage, ttl_seconds=ttl_seconds)
    if signed is not None:
        view.download_url, view.expires_at = signed
    return view
