"""What the seed adapters (`seed002_records`, `seed004_exports`) share.

- `in_document_terms`: errors raised by the core request and services, renamed to the fields the
  document's client sent (`filters.account_ids` → `account_id`), so a 422 names a field it knows.
- `checked_request` and `start_export`: an export started exactly as `POST /export` starts one (date
  defaults, PDF row limit, owned account/tag ids, dedup rules, the `exports` row, the Dagster run
  submitted after the answer).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fastapi import BackgroundTasks, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.background_submission import submit_after_answer
from api.deps import CatalogDep, LauncherDep, PrincipalDep, SessionDep, SettingsDep, StorageDep
from api.errors import GatewayError
from api.schemas import ExportRequest
from api.services.date_range import dated_request
from api.services.exports import CreateResult, ReusePolicy, create_export, spec_for
from api.services.streams import check_pdf_rows
from api.source_lookups import check_owned_values

_FIELD_FIRST = re.compile(r"(?P<field>[a-z_]+(?:\.[a-z_]+)*): ")


def renamed(dotted: str, names: Mapping[str, str]) -> str:
    """The document's name of a core field (`filters.account_ids.0` → `account_id`), else unchanged."""
    for core, seed in names.items():
        if dotted == core or dotted.startswith(core + "."):
            return seed
    return dotted


@contextmanager
def in_document_terms(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise validation and gateway errors with the document's field names (`names`: core → seed).
    A pydantic error of a request built in code becomes the 422 it would have been as a body."""
    try:
        yield
    except (ValidationError, RequestValidationError) as exc:
        problems = [
            {**e, "loc": tuple(renamed(".".join(_parts(e.get("loc", ()))), names).split("."))}
            for e in exc.errors()
        ]
        raise RequestValidationError(problems) from exc
    except GatewayError as exc:
        message = str(exc)
        first = _FIELD_FIRST.match(message)
        if first:
            exc.args = (renamed(first["field"], names) + ": " + message[first.end() :],)
        if exc.field is not None:
            exc.field = renamed(exc.field, names)
        raise


def _parts(loc: Any) -> list[str]:
    return [str(p) for p in loc if p not in ("body", "query", "path")]


def checked_request(
    core: ExportRequest,
    *,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> ExportRequest:
    """The request with its default dates, refused now if it cannot run: the checks of `POST /export`."""
    dated = dated_request(core, request, session, principal, catalog, settings)
    if dated.format == "pdf":  # a statement has a row limit: refuse now, not with a FAILED export later
        dataset, spec = spec_for(catalog, principal, dated)
        check_pdf_rows(dataset=dataset, spec=spec, source=request.app.state.source)
    check_owned_values(
        dated, owner=principal.subject, catalog=catalog, lookups=request.app.state.source_lookups
    )
    return dated


def start_export(
    checked: ExportRequest,
    *,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    principal: PrincipalDep,
    launcher: LauncherDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> CreateResult:
    """Create (or reuse, or attach to) the export of a `checked_request`, as `POST /export` does; a new
    one is handed to Dagster after the answer."""
    result = create_export(
        session=session,
        principal=principal,
        request=checked,
        storage=storage,
        catalog=catalog,
        policy=ReusePolicy.from_settings(settings),
        owner_limit=settings.owner_active_export_limit,
    )
    submit_after_answer(background, request, launcher, result)
    return result
