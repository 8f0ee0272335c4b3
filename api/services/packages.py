"""Creating and reading packages: a package is an `exports` row of kind 'package'.

Creation is `create_for_spec` of the export service with the package's canonical spec: the same
advisory lock, finality, REUSE / ATTACH / NEW decision, owner cap and (deferred) submission. Reading,
downloading, listing and DELETE are the export service's functions with `kind="package"`, so another
owner's package, an export's id or an unknown id are the same 404.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from api.errors import InvalidRequest, ServiceUnavailable
from api.package_schemas import PackagePart, PackageRequest, PackageView
from api.security import Principal
from api.services.export_reads import signed_download
from api.services.exports import CreateResult, ReusePolicy, create_for_spec
from api.source_lookups import SourceLookupFailed, SourceLookups
from export_engine.core.catalog import Catalog
from export_engine.core.dedup import business_today, final_at
from export_engine.core.package_spec import HISTORY_START, PACKAGE_FORMATS, PackageSpec
from export_engine.db.models import Export, ExportStatus
from export_engine.db.session import db_now
from export_engine.delivery.bucket import S3Storage
from export_engine.errors import ExportRequestError

log = logging.getLogger(__name__)
KIND = "package"


def package_spec_for(
    *,
    catalog: Catalog,
    principal: Principal,
    request: PackageRequest,
    lookups: SourceLookups | None,
    today: date,
) -> PackageSpec:
    """The canonical spec. Dates left out: `date_to` today, `date_from` the owner's first date in the
    package's dated datasets (the rows are the same as from the earliest date; the range says what
    they span). If that look-up cannot run, the earliest date the engine takes, with the same rows."""
    date_to = request.date_to or today
    try:
        spec = PackageSpec.for_request(
            catalog,
            owner=principal.subject,
            datasets=request.datasets,
            date_from=request.date_from or date_to,
            date_to=date_to,
            format=request.format,
        )
    except ExportRequestError as exc:
        raise InvalidRequest(str(exc)) from exc
    if request.date_from is not None:
        return spec
    dated = [catalog.get(n) for n in spec.datasets if not catalog.get(n).whole_history_in_packages]
    first: date | None = HISTORY_START
    if lookups is not None:
        try:
            first = lookups.first_date(dated, owner=principal.subject)
        except SourceLookupFailed as exc:  # as for an export: another range would be another key
            log.warning("package date_from: the owner's first date is unknown: %s", exc)
            raise ServiceUnavailable(
                "could not find where your data starts (the source database did not answer); "
                "retry later or give date_from"
            ) from exc
    date_from = min(first, date_to) if first is not None else date_to
    return PackageSpec(
        owner=spec.owner, datasets=spec.datasets, date_from=date_from, date_to=date_to, format=spec.format
    )


def create_package(
    *,
    session: Session,
    principal: Principal,
    request: PackageRequest,
    storage: S3Storage,
    catalog: Catalog,
    policy: ReusePolicy,
    lookups: SourceLookups | None,
    owner_limit: int | None = None,
    now: datetime | None = None,
) -> CreateResult:
    """As `create_export`: a new package is only committed PENDING and returned with `to_submit`, for
    the caller to submit once it has answered."""
    now = now or db_now(session)  # "today" on the database's clock, as for an export
    today = business_today(now, policy.timezone)
    spec = package_spec_for(
        catalog=catalog, principal=principal, request=request, lookups=lookups, today=today
    )
    final_since = _final_since(spec, catalog, policy)
    return create_for_spec(
        session=session,
        spec=spec,
        final_since=final_since,
        force_refresh=request.force_refresh,
        storage=storage,
        policy=policy,
        owner_limit=owner_limit,
        now=now,
    )


def _final_since(spec: PackageSpec, catalog: Catalog, policy: ReusePolicy) -> datetime:
    """Final once every dataset's period containing date_to is final (a monthly view: its month).
    A period that ends past the calendar (December 9999) is never final."""
    try:
        return max(
            final_at(
                date_to=spec.date_to,
                time_grain=catalog.get(name).time_grain,
                timezone=policy.timezone,
                settlement_lag=policy.settlement_lag,
            )
            for name in spec.datasets
        )
    except (ValueError, OverflowError):
        return datetime.max.replace(tzinfo=UTC)


def package_view(
    export: Export, *, catalog: Catalog, storage: S3Storage, ttl_seconds: int, now: datetime
) -> PackageView:
    spec = PackageSpec.from_canonical(export.params)
    if export.parts:
        parts = [PackagePart.model_validate(p) for p in export.parts]
    else:  # not started yet: every dataset PENDING
        parts = [
            PackagePart(dataset=name, path=f"{name}.{spec.format}", status="PENDING")
            for name in spec.datasets
        ]
    view = PackageView(
        reference_id=export.reference_id,
        status=export.status,
        datasets=list(spec.datasets),
        date_from=spec.date_from,
        date_to=spec.date_to,
        format=spec.format,
        created_at=export.created_at,
        started_at=export.started_at,
        completed_at=export.completed_at,
        rows_written=export.rows_written if export.status == ExportStatus.RUNNING.value else None,
        parts=parts,
        row_count=export.row_count,
        file_size_bytes=export.file_size_bytes,
        reused_from_ref=export.reused_from_ref,
        error=export.error,
    )
    signed = signed_download(export, storage=storage, ttl_seconds=ttl_seconds, now=now)
    if signed is not None:
        view.download_url, view.expires_at = signed
    return view


__all__ = ["KIND", "PACKAGE_FORMATS", "create_package", "package_spec_for", "package_view"]
