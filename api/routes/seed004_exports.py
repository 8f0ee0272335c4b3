"""Seed 004's asynchronous exports: `/api/exports/request`, `/{id}/status`, `/{id}/download` and
`/my-exports`, over the one engine.

A thin edge (STYLE.md rule 20): the request becomes an `ExportRequest` (`export_type` → the dataset,
the seed's filters → the core's, `api.seed004_schemas`) and the same checks, dedup rules, `exports`
row and Dagster run follow as for `POST /export`. The integer `export_id` is the export's
per-deployment serial (`exports.serial_id`); `file_url` is relative (`host + file_url` downloads, with
the same bearer token), and redirects to a freshly signed URL of the file. Statuses keep the core's
upper-case names, as the seed's; the answer to a request is always 202, the only code it prints.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from api.deps import CatalogDep, LauncherDep, PrincipalDep, SessionDep, SettingsDep, StorageDep
from api.errors import ErrorBody, GatewayError
from api.openapi import bearer, errors
from api.routes.translation import checked_request, in_document_terms, start_export
from api.schemas import ExportRequest, ExportView
from api.seed004_schemas import (
    PREFIX,
    SEED_NAMES,
    ExportCreated004,
    ExportRequest004,
    ExportStatus004,
    MyExports004,
    seed_status,
    status_body,
)
from api.services.export_reads import download_location
from api.services.serial_reads import get_by_serial, numbered_page
from api.source_lookups import fill_progress, progress_percent

router = APIRouter(prefix=PREFIX, tags=["seed 004: async exports"], dependencies=[Depends(bearer)])

MESSAGES = {
    "created": "Export job created successfully; poll status_url until status is COMPLETED, then get file_url",
    "reused": "Export job created successfully; an identical export's file was reused: it is COMPLETED",
    "attached": "Export job created successfully; it joined an identical export already in progress",
}


@router.post(
    "/request",
    response_model=ExportCreated004,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **errors(401, 413, 422, 503),
        429: {
            "model": ErrorBody,
            "description": "OWNER_ACTIVE_EXPORT_LIMIT exports PENDING or RUNNING; retry after `Retry-After`",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
)
def request_export(
    body: ExportRequest004,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    principal: PrincipalDep,
    launcher: LauncherDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> ExportCreated004:
    """Create an export job: 202 also when an identical file is reused (status COMPLETED) or an
    identical export in progress is joined (its `export_id`)."""
    with in_document_terms(SEED_NAMES):
        core = ExportRequest.model_validate(body.core(catalog))
        checked = checked_request(
            core, request=request, session=session, principal=principal, catalog=catalog, settings=settings
        )
        result = start_export(
            checked,
            request=request,
            background=background,
            session=session,
            principal=principal,
            launcher=launcher,
            storage=storage,
            catalog=catalog,
            settings=settings,
        )
    status_url = f"{PREFIX}/{result.export.serial_id}/status"
    response.headers["Location"] = status_url
    return ExportCreated004(
        export_id=result.export.serial_id,
        status=seed_status(result.export),
        message=MESSAGES[result.outcome],
        status_url=status_url,
    )


@router.get("/my-exports", response_model=MyExports004, responses=errors(401, 422, 503))
def my_exports(
    session: SessionDep,
    principal: PrincipalDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 10,
) -> MyExports004:
    """Your exports, newest first, by page number."""
    exports, total = numbered_page(session=session, principal=principal, page=page, per_page=per_page)
    items = [
        status_body(e, progress=progress_percent(status=e.status, rows_written=None, estimate=None))
        for e in exports
    ]
    return MyExports004(
        items=items, total_items=total, page=page, per_page=per_page, total_pages=math.ceil(total / per_page)
    )


@router.get("/{export_id}/status", response_model=ExportStatus004, responses=errors(401, 404, 503))
def export_status(
    export_id: str, request: Request, session: SessionDep, principal: PrincipalDep, catalog: CatalogDep
) -> ExportStatus004:
    """The export's status and progress; once COMPLETED, `file_url` (relative to this host)."""
    export = get_by_serial(session=session, principal=principal, serial=export_id)
    view = ExportView.model_validate(export, from_attributes=True)
    fill_progress(view, export, catalog=catalog, lookups=request.app.state.source_lookups)
    return status_body(export, progress=view.progress)


@router.get(
    "/{export_id}/download",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={
        302: {"description": "redirect to a freshly signed URL of the file (Content-Disposition names it)"},
        **errors(401, 404, 409, 410, 503),
    },
)
def download(
    export_id: str, session: SessionDep, principal: PrincipalDep, storage: StorageDep, settings: SettingsDep
) -> RedirectResponse:
    """The file: a redirect to a signed URL, which HTTP clients (requests, browsers, `curl -L`) follow."""
    export = get_by_serial(session=session, principal=principal, serial=export_id)
    try:
        url = download_location(
            session=session,
            principal=principal,
            reference_id=export.reference_id,
            storage=storage,
            ttl_seconds=settings.presign_ttl_seconds,
        )
    except GatewayError as exc:  # 409 / 410: name the export by the id the client knows
        exc.args = (str(exc).replace(repr(export.reference_id), export_id),)
        raise
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND, headers={"Cache-Control": "no-store"})
