"""`POST /export/stream`: a small export answered with the file itself (see `api.services.streams`)."""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import CollectorRegistry, Counter
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.deps import CatalogDep, PrincipalDep, SettingsDep
from api.errors import TooManyStreams
from api.observability import request_id_var
from api.openapi import bearer, errors
from api.services.date_range import DatedExportRequest
from api.services.streams import PreparedStream, prepare_stream
from export_engine.core.formats import FORMATS
from export_engine.settings import Settings
from export_engine.source.database import SourceDatabase

router = APIRouter(tags=["exports"], dependencies=[Depends(bearer)])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_FILE_TYPES = {spec.content_type: _BINARY for spec in FORMATS.values()} | {"application/gzip": _BINARY}


def get_source(request: Request) -> SourceDatabase:
    return request.app.state.source


SourceDep = Annotated[SourceDatabase, Depends(get_source)]


class StreamSlots:
    """At most `limit` synchronous streams at once per gateway: each holds a thread and a source session."""

    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.limit = limit
        self.in_use = 0

    def acquire(self) -> None:
        if not self._slots.acquire(blocking=False):
            raise TooManyStreams(
                f"all {self.limit} synchronous export streams are busy; retry shortly, or POST /export"
            )
        with self._lock:
            self.in_use += 1

    def release(self) -> None:
        with self._lock:
            self.in_use -= 1
        self._slots.release()


class StreamMetrics:
    """Synchronous streams leave nothing in the export DB, so unlike the exports they are counted here."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._answers = Counter(
            "export_stream_requests",
            "Synchronous export streams by format and outcome "
            "(completed, disconnected, failed, or the refusal's HTTP status)",
            ["format", "outcome"],
            registry=registry,
        )
        self._rows = Counter(
            "export_stream_rows", "Rows sent by completed synchronous streams", ["format"], registry=registry
        )

    def refused(self, fmt: str, exc: BaseException) -> None:
        self._answers.labels(fmt, str(getattr(exc, "status_code", "error"))).inc()

    def finished(self, fmt: str, outcome: str, rows: int) -> None:
        self._answers.labels(fmt, outcome).inc()
        if outcome == "completed":
            self._rows.labels(fmt).inc(rows)


def install_streams(app: FastAPI, settings: Settings) -> None:
    """Mount `POST /export/stream` with its source, its slots and its counters."""
    app.state.source = SourceDatabase.from_settings(settings)
    app.state.stream_slots = StreamSlots(settings.stream_max_concurrent)
    app.state.stream_metrics = StreamMetrics(app.state.metrics_registry)
    app.include_router(router)


class _FileResponse(StreamingResponse):
    """Closes the body (and so the snapshot and the slot) however the answer ends, disconnects too.

    The whole answer has `max_seconds`: a client that keeps the connection open but reads slowly would
    otherwise hold a slot and a snapshot on the source as long as it likes (review 2026-12-07 N7).
    Past it the answer is broken off without its last chunk, so the client sees a broken transfer."""

    def __init__(self, stream: PreparedStream, release: Any, max_seconds: float) -> None:
        self._stream = stream
        self._stream_body: AsyncGenerator[bytes, None] = stream.body()
        self._release = release
        self._max_seconds = max_seconds
        super().__init__(
            self._stream_body,
            media_type=stream.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{stream.filename}"',
                "Cache-Control": "no-store",
                "X-Export-Rows": str(stream.rows),
            },
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as answer:
                answer.start_soon(self._break_off_at_deadline, answer.cancel_scope)
                await super().__call__(scope, receive, send)
                answer.cancel_scope.cancel()  # answered in time: stop the watchdog
        finally:
            with anyio.CancelScope(shield=True):
                await self._stream_body.aclose()
            self._stream.close()  # when the body never started (its own `finally` closes it otherwise)
            self._release()

    async def _break_off_at_deadline(self, answer: anyio.CancelScope) -> None:
        await anyio.sleep(self._max_seconds)
        self._stream.timed_out = True  # before the body's own `finally` reports the outcome
        answer.cancel()


@router.post(
    "/export/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the file itself, streamed; `Content-Disposition` names it as POST /export would",
            "content": _FILE_TYPES,
            "headers": {"X-Export-Rows": {"description": "rows in the file", "schema": {"type": "integer"}}},
        },
        **errors(401, 413, 422, 429, 503),
    },
)
def stream_export(
    body: DatedExportRequest,
    request: Request,
    principal: PrincipalDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    source: SourceDep,
) -> StreamingResponse:
    """The export as the answer, for at most `STREAM_MAX_ROWS` rows (default 10,000): the same body,
    validation, formats and file as `POST /export`, from one read-only snapshot, with nothing stored.
    Past the limit: 413, and `POST /export` takes the same body. `force_refresh` has no effect here
    (a stream always reads the database as it is now)."""
    return file_answer(
        request,
        body.format,
        lambda: prepare_stream(
            principal=principal,
            request=body,
            catalog=catalog,
            source=source,
            max_rows=settings.stream_max_rows,
            writer_params={
                "page_size": settings.pdf_page_size,
                "export_reference": f"request {request_id_var.get() or 'not recorded'} (streamed)",
            },
        ),
    )


def file_answer(request: Request, fmt: str, prepare: Callable[[], PreparedStream]) -> StreamingResponse:
    """Hold a stream slot while `prepare` validates and counts, then answer with the file; a refusal
    frees the slot and is counted. Every route that answers with a synchronous stream goes through it."""
    slots: StreamSlots = request.app.state.stream_slots
    metrics = request.app.state.stream_metrics
    try:
        slots.acquire()
    except TooManyStreams as exc:  # a refusal too: counted like the others
        metrics.refused(fmt, exc)
        raise
    try:
        stream = prepare()
    except Exception as exc:
        slots.release()
        metrics.refused(fmt, exc)
        raise
    stream.on_finish = lambda outcome, rows: metrics.finished(stream.spec.format, outcome, rows)
    return _FileResponse(stream, slots.release, request.app.state.settings.stream_max_seconds)
