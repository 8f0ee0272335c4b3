"""Seed 002's record exports: `GET /export/records/{csv,json,excel}`, `POST /export/records/background`
and `GET /export/jobs[/{job_id}]`, over the one engine.

A thin edge (STYLE.md rule 20). The seed's parameters become an `ExportRequest` for the
`transactions` dataset: `account_id` → `filters.account_ids`, comma-separated `columns`, `status`,
`date_from`/`date_to` (optional, as in `POST /export`). The three GETs are the synchronous stream
service (`POST /export/stream`'s slots, snapshot, writers and row limit), named
`records_{account_id}_{date}.{ext}`, JSON as `{"records": [...]}`. A background job is `POST /export`'s
service (dedup rules, `exports` row, Dagster run), reshaped to the seed's `ExportJobResponse` and its
four statuses. The document's split holds both ways: at most `STREAM_MAX_ROWS` (10,000) rows stream,
more go to the background, and each endpoint names the other when a request belongs there.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, fields
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, status
from starlette.responses import StreamingResponse

from api.deps import (
    CatalogDep,
    LauncherDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from api.errors import InvalidRequest, TooManyRows
from api.openapi import bearer, errors
from api.routes.stream import SourceDep, file_answer
from api.routes.translation import checked_request, in_document_terms, start_export
from api.schemas import ExportRequest
from api.seed002_schemas import (
    DATASET,
    EXTENSIONS,
    SEED_NAMES,
    ExportJobCreate,
    ExportJobPage,
    ExportJobResponse,
    file_name,
    job_response,
)
from api.services.export_reads import get_export, list_exports
from api.services.exports import spec_for
from api.services.streams import PreparedStream, count_rows, prepare_stream
from export_engine.core.dedup import business_today
from export_engine.core.formats import FORMATS
from export_engine.db.session import db_now

router = APIRouter(tags=["seed 002: record exports"], dependencies=[Depends(bearer)])


@dataclass(frozen=True)
class RecordsQuery:
    account_id: str
    columns: list[str] | None
    status: str | None
    date_from: date | None
    date_to: date | None

    def core(self, fmt: str) -> ExportRequest:
        with in_document_terms(SEED_NAMES):
            return ExportRequest.model_validate(
                {
                    "table_name": DATASET,
                    "format": fmt,
                    "columns": self.columns,
                    "date_from": self.date_from.isoformat() if self.date_from else None,
                    "date_to": self.date_to.isoformat() if self.date_to else None,
                    "filters": {"account_ids": [self.account_id]}
                    | ({"status": self.status} if self.status else {}),
                }
            )


def records_query(
    account_id: Annotated[str, Query(min_length=1, max_length=128, description="one of your account ids")],
    columns: Annotated[
        str | None, Query(max_length=4000, description="comma-separated column names; default all")
    ] = None,
    status: Annotated[str | None, Query(max_length=128, description="posted, pending or reversed")] = None,
    date_from: Annotated[date | None, Query(description="first day, inclusive")] = None,
    date_to: Annotated[date | None, Query(description="last day, inclusive; default today")] = None,
) -> RecordsQuery:
    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    return RecordsQuery(account_id.strip(), chosen or None, status, date_from, date_to)


RecordsQueryDep = Annotated[RecordsQuery, Depends(records_query)]


@dataclass
class RecordsStream(PreparedStream):
    """The stream service's answer under the seed's file name; JSON inside `{"records": ...}`."""

    download_name: str = ""
    records_key: bool = False

    @property
    def filename(self) -> str:
        return self.download_name

    async def body(self) -> AsyncGenerator[bytes, None]:
        async with aclosing(super().body()) as chunks:
            if self.records_key:
                yield b'{"records":'
            async for chunk in chunks:
                yield chunk
            if self.records_key:
                yield b"}"


def _records(
    fmt: Literal["csv", "json", "excel"],
    query: RecordsQuery,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    source: SourceDep,
) -> StreamingResponse:
    core = query.core(fmt)

    def prepare() -> PreparedStream:
        with in_document_terms(SEED_NAMES):
            checked = checked_request(
                core,
                request=request,
                session=session,
                principal=principal,
                catalog=catalog,
                settings=settings,
            )
            today = business_today(db_now(session), settings.business_timezone)
            session.rollback()  # hold no transaction open while the file streams
            try:
                stream = prepare_stream(
                    principal=principal,
                    request=checked,
                    catalog=catalog,
                    source=source,
                    max_rows=settings.stream_max_rows,
                )
            except TooManyRows as exc:
                raise TooManyRows(
                    f"these records are more than {settings.stream_max_rows:,} rows, the most a streaming "
                    "answer holds; POST /export/records/background with the same fields exports them "
                    "as a background job"
                ) from exc
        state: dict[str, Any] = {f.name: getattr(stream, f.name) for f in fields(stream)}
        return RecordsStream(
            **state, download_name=file_name(query.account_id, today, fmt), records_key=fmt == "json"
        )

    return file_answer(request, core.format, prepare)


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_STREAMED: dict[str | int, dict[str, Any]] = {
    200: {
        "description": "the records, streamed, as an attachment",
        "content": {FORMATS[f].content_type: _BINARY for f in ("csv", "json", "xlsx")},
    },
    **errors(401, 413, 422, 429, 503),
}


def _records_route(fmt: Literal["csv", "json", "excel"]) -> Any:
    def route(
        query: RecordsQueryDep,
        request: Request,
        session: SessionDep,
        principal: PrincipalDep,
        catalog: CatalogDep,
        settings: SettingsDep,
        source: SourceDep,
    ) -> StreamingResponse:
        return _records(fmt, query, request, session, principal, catalog, settings, source)

    return route


for _fmt, _what in (
    ("csv", "CSV"),
    ("json", '`{"records": [...]}` (`application/json`)'),
    ("excel", "an .xlsx workbook (built in a temporary file, then streamed)"),
):
    router.add_api_route(
        f"/export/records/{_fmt}",
        _records_route(_fmt),  # type: ignore[arg-type]
        methods=["GET"],
        name=f"records_{_fmt}",
        response_class=StreamingResponse,
        responses=_STREAMED,
        description=f"Your records as {_what}, named `records_{{account_id}}_{{date}}.{EXTENSIONS[_fmt]}`, "
        "at most `STREAM_MAX_ROWS` (10,000) rows; more: 413, naming the background job.",
    )


@router.post(
    "/export/records/background",
    response_model=ExportJobResponse,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(401, 422, 429, 503),
)
def records_background(
    body: ExportJobCreate,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    principal: PrincipalDep,
    launcher: LauncherDep,
    storage: StorageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> ExportJobResponse:
    """A background export job, for more than `STREAM_MAX_ROWS` (10,000) rows: the rows are counted
    first, and fewer are a 422 giving the streaming URL. Same dedup rules as `POST /export`: an
    identical finished file is reused, an identical job in flight is joined (202 either way)."""
    query = RecordsQuery(body.account_id, body.columns, body.status, body.date_from, body.date_to)
    core = query.core(body.format)
    with in_document_terms(SEED_NAMES):
        checked = checked_request(
            core, request=request, session=session, principal=principal, catalog=catalog, settings=settings
        )
        dataset, spec = spec_for(catalog, principal, checked)
        limit = settings.stream_max_rows
        rows = count_rows(dataset=dataset, spec=spec, source=request.app.state.source, limit=limit)
        if rows <= limit:
            raise InvalidRequest(
                f"these records are {rows:,} rows, at most {limit:,}: use the streaming endpoint "
                f"GET {_stream_url(body.format, query)} (background jobs are for more rows)"
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
    return job_response(
        result.export, storage=storage, ttl_seconds=settings.presign_ttl_seconds, now=db_now(session)
    )


def _stream_url(fmt: str, query: RecordsQuery) -> str:
    params = {
        "account_id": query.account_id,
        "columns": ",".join(query.columns) if query.columns else None,
        "status": query.status,
        "date_from": query.date_from.isoformat() if query.date_from else None,
        "date_to": query.date_to.isoformat() if query.date_to else None,
    }
    return f"/export/records/{fmt}?" + urlencode({k: v for k, v in params.items() if v is not None})


@router.get("/export/jobs", response_model=ExportJobPage, responses=errors(401, 422, 503))
def list_jobs(
    session: SessionDep,
    principal: PrincipalDep,
    storage: StorageDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> ExportJobPage:
    """Your export jobs, newest first; pass `next_cursor` back as `cursor` for the next page."""
    page = list_exports(session=session, principal=principal, limit=limit, cursor=cursor)
    now = db_now(session)
    items = [
        job_response(e, storage=storage, ttl_seconds=settings.presign_ttl_seconds, now=now)
        for e in page.exports
    ]
    return ExportJobPage(items=items, next_cursor=page.next_cursor)


@router.get("/export/jobs/{job_id}", response_model=ExportJobResponse, responses=errors(401, 404, 503))
def read_job(
    job_id: str, session: SessionDep, principal: PrincipalDep, storage: StorageDep, settings: SettingsDep
) -> ExportJobResponse:
    """The job's status; once COMPLETED, `file_url` is a freshly signed download URL."""
    export = get_export(session=session, principal=principal, reference_id=job_id)
    return job_response(
        export, storage=storage, ttl_seconds=settings.presign_ttl_seconds, now=db_now(session)
    )
