"""The dates a request leaves out. "Export everything" is a request without dates: it runs from the
day of the owner's first row in the dataset to today (in `BUSINESS_TIMEZONE`).

The defaults are filled in before the request is canonicalised, so the export's key, file name and
status show the concrete range, and the dedup rules treat it as any range ending today: never reused
while today is still open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated

from fastapi import Depends, Request

from api.deps import CatalogDep, PrincipalDep, SessionDep, SettingsDep
from api.errors import InvalidRequest, ServiceUnavailable
from api.schemas import ExportRequest
from api.source_lookups import SourceLookupFailed, SourceLookups
from export_engine.core.catalog import Catalog
from export_engine.core.dedup import business_today
from export_engine.db.session import db_now
from export_engine.errors import CatalogError

log = logging.getLogger(__name__)


def with_default_dates(
    request: ExportRequest,
    *,
    owner: str,
    catalog: Catalog,
    lookups: SourceLookups,
    timezone: str,
    clock: Callable[[], datetime],
) -> ExportRequest:
    """`request` with both dates set; an unknown dataset is left for the export service to answer.
    `clock` is read only when `date_to` is missing."""
    if request.date_from is not None and request.date_to is not None:
        return request
    try:
        dataset = catalog.get(request.table_name)
    except CatalogError:
        return request
    date_to = request.date_to or business_today(clock(), timezone)
    date_from = request.date_from
    if date_from is None:
        try:
            earliest = lookups.first_date([dataset], owner=owner)
        except SourceLookupFailed as exc:
            log.warning("no first row for %s: %s", dataset.id, exc)
            raise ServiceUnavailable(
                "could not find where your data starts (the source database did not answer); "
                "retry later or give date_from"
            ) from exc
        date_from = min(earliest, date_to) if earliest is not None else date_to
    if date_from > date_to:
        raise InvalidRequest(
            f"date_from: {date_from} is after date_to ({_described(date_to, request.date_to)})"
        )
    return request.model_copy(update={"date_from": date_from, "date_to": date_to})


def _described(value: date, given: date | None) -> str:
    return str(value) if given is not None else f"today, {value}"


def dated_request(
    body: ExportRequest,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> ExportRequest:
    """The request body with its dates filled in; "today" is read from the database's clock."""

    def db_clock() -> datetime:
        now = db_now(session)
        session.rollback()  # hold no transaction open for the rest of the request
        return now

    return with_default_dates(
        body,
        owner=principal.subject,
        catalog=catalog,
        lookups=request.app.state.source_lookups,
        timezone=settings.business_timezone,
        clock=db_clock,
    )


DatedExportRequest = Annotated[ExportRequest, Depends(dated_request)]
