"""`/packages` routes: several datasets in one ZIP with a manifest. Parse, call one service, shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from api.background_submission import submit_after_answer
from api.deps import CatalogDep, LauncherDep, PrincipalDep, SessionDep, SettingsDep, StorageDep
from api.errors import ErrorBody
from api.openapi import bearer, errors
from api.package_schemas import PackageCreated, PackagePage, PackageRequest, PackageView
from api.schemas import ExportStatusName
from api.services.cancellation import cancel_export
from api.services.export_reads import created_answer, download_location, get_export, list_exports
from api.services.exports import ReusePolicy
from api.services.packages import KIND, create_package, package_view
from export_engine.db.session import db_now

router = APIRouter(tags=["packages"], dependencies=[Depends(bearer)])


@router.post(
    "/packages",
    response_model=PackageCreated,
    response_model_exclude_none=True,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {
            "model": PackageCreated,
            "description": "reused a finished package or attached to a running one",
        },
        **errors(401, 422, 503),
        429: {
            "model": ErrorBody,
            "description": "the owner already has OWNER_ACTIVE_EXPORT_LIMIT exports or packages PENDING or "
            "RUNNING; retry after `Retry-After` seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
)
def post_package(
    body: PackageRequest,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    principal: PrincipalDep,
    launcher: LauncherDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> PackageCreated:
    result = create_package(
        session=session,
        principal=principal,
        request=body,
        storage=storage,
        catalog=catalog,
        policy=ReusePolicy.from_settings(settings),
        lookups=getattr(request.app.state, "source_lookups", None),
        owner_limit=settings.owner_active_export_limit,
    )
    submit_after_answer(background, request, launcher, result)  # answered first, as POST /export
    if result.outcome != "created":
        response.status_code = status.HTTP_200_OK
    status_url = f"/packages/{result.export.reference_id}"
    response.headers["Location"] = status_url
    return PackageCreated(
        **created_answer(
            result,
            status_url=status_url,
            storage=storage,
            ttl_seconds=settings.presign_ttl_seconds,
            session=session,
        )
    )


@router.get(
    "/packages", response_model=PackagePage, response_model_exclude_none=True, responses=errors(401, 422, 503)
)
def list_my_packages(
    session: SessionDep,
    principal: PrincipalDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    status: ExportStatusName | None = None,
) -> PackagePage:
    page = list_exports(
        session=session, principal=principal, limit=limit, cursor=cursor, status=status, kind=KIND
    )
    now = db_now(session)
    ttl = settings.presign_ttl_seconds
    return PackagePage(
        items=[
            package_view(e, catalog=catalog, storage=storage, ttl_seconds=ttl, now=now) for e in page.exports
        ],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/packages/{reference_id}",
    response_model=PackageView,
    response_model_exclude_none=True,
    responses=errors(401, 404, 503),
)
def read_package(
    reference_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> PackageView:
    export = get_export(session=session, principal=principal, reference_id=reference_id, kind=KIND)
    return package_view(
        export,
        catalog=catalog,
        storage=storage,
        ttl_seconds=settings.presign_ttl_seconds,
        now=db_now(session),
    )


@router.get(
    "/packages/{reference_id}/download",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={
        302: {"description": "redirect to a freshly signed URL of the ZIP"},
        **errors(401, 404, 409, 410, 503),
    },
)
def download_package(
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
        kind=KIND,
    )
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND, headers={"Cache-Control": "no-store"})


@router.delete(
    "/packages/{reference_id}",
    response_model=PackageView,
    response_model_exclude_none=True,
    responses=errors(401, 404, 409, 503),
)
def delete_package(
    reference_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    launcher: LauncherDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> PackageView:
    """Cancel a package in flight (CANCELED) or delete its finished ZIP (EXPIRED)."""
    export = cancel_export(
        session=session,
        principal=principal,
        reference_id=reference_id,
        launcher=launcher,
        storage=storage,
        kind=KIND,
    )
    return package_view(
        export,
        catalog=catalog,
        storage=storage,
        ttl_seconds=settings.presign_ttl_seconds,
        now=db_now(session),
    )
