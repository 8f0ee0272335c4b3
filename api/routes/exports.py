"""`/export` routes: parse, call one service function, shape the answer."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Response, status

from api.deps import CatalogDep, LauncherDep, PrincipalDep, SessionDep, SettingsDep, StorageDep
from api.schemas import ExportCreated, ExportRequest, ExportView
from api.services.exports import create_export, get_export, signed_download
from export_engine.db.models import ExportStatus

router = APIRouter(tags=["exports"])


@router.post(
    "/export",
    response_model=ExportCreated,
    response_model_exclude_none=True,
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"model": ExportCreated, "description": "reused a finished file or attached to a running export"}},
)
def post_export(
    body: ExportRequest,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    launcher: LauncherDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> ExportCreated:
    today = datetime.now(ZoneInfo(settings.business_timezone)).date()
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
    return ExportCreated(
        reference_id=export.reference_id,
        status=export.status,
        created_at=export.created_at,
        reused_from_ref=export.reused_from_ref,
    )


@router.get("/export/{reference_id}", response_model=ExportView, response_model_exclude_none=True)
def read_export(
    reference_id: str, session: SessionDep, principal: PrincipalDep, storage: StorageDep, settings: SettingsDep
) -> ExportView:
    export = get_export(session=session, principal=principal, reference_id=reference_id)
    view = ExportView.model_validate(export, from_attributes=True)
    if export.status != ExportStatus.RUNNING.value:
        view.rows_written = None
    signed = signed_download(export, storage=storage, ttl_seconds=settings.presign_ttl_seconds)
    if signed is not None:
        view.download_url, view.expires_at = signed
    return view
