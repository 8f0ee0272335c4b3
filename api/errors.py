"""Domain errors of the gateway and the one place they become HTTP answers.

GatewayError
├── ExportNotFound     → 404
├── NotFound           → 404 (a webhook endpoint or delivery the caller does not have)
├── WrongSecretToken   → 401 (a Telegram update without the right secret token)
├── Forbidden          → 403 (Telegram updates are not accepted: no secret token is configured)
├── FeatureOff         → 409 (Telegram is not configured on this server)
├── ExportNotReady     → 409 (a download of an export that has no file yet)
├── ExportFileGone     → 410 (the file expired or was deleted; export again)
├── DatasetUnknown     → 422 (lists the valid dataset ids)
├── ExportConflict     → 409 (the export's state does not allow the operation)
├── InvalidRequest     → 422 (a column, filter, format or cursor not accepted; names the valid choices)
├── TooManyExports     → 429 + Retry-After (the owner's PENDING + RUNNING exports are at the cap)
├── TooManyRows        → 413 (a synchronous stream or PDF would exceed its row limit)
├── TooManyStreams     → 429 (every synchronous stream slot is busy; retry shortly)
└── ServiceUnavailable → 503 (a dependency is down; retry later)
└── MalformedBody      → 422 (a JSON body that is not UTF-8)
AuthError (api.security) → 401
AuthUnavailable (api.security) → 503 (the identity provider's keys could not be fetched)
any other exception → 500, with the same body and no internals (they go to the log)

Every error answer has one body, `ErrorBody`: `detail`, a sentence a person can act on, and
`errors`, one `{field, message}` per offending field (empty when no field is to blame). Starlette's
own answers (unknown path, wrong method, an undecodable body) are reshaped to it as well.
"""

from __future__ import annotations

import logging
import re

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.security import AuthError, AuthUnavailable

log = logging.getLogger(__name__)

_UNPARSEABLE_BODY = "There was an error parsing the body"


class FieldError(BaseModel):
    field: str = Field(description="the offending field, dotted (`filters.amount_min`), or `body`")
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer."""

    detail: str = Field(description="what is wrong, in one sentence")
    errors: list[FieldError] = Field(default_factory=list, description="one entry per offending field")


class GatewayError(Exception):
    status_code = 400
    field: str | None = None  # the request field to blame, when there is one
    headers: dict[str, str] | None = None  # extra response headers (Retry-After)

    def field_errors(self) -> list[dict[str, str]]:
        """`{field, message}` for a message written as `field: message`, or for `self.field`."""
        message = str(self)
        if self.field is not None:
            return [{"field": self.field, "message": message}]
        named = _FIELD_PREFIX.match(message)
        if named and self.status_code == 422:
            return [{"field": named["field"], "message": named["message"]}]
        return []


_FIELD_PREFIX = re.compile(r"(?P<field>[a-z_]+(?:\.[a-z_]+)*): (?P<message>.+)", re.DOTALL)


class ExportNotFound(GatewayError):
    status_code = 404

    def __init__(self, reference_id: str, kind: str = "export") -> None:
        super().__init__(f"{kind} {reference_id!r} not found")


class NotFound(GatewayError):
    status_code = 404


class WrongSecretToken(GatewayError):
    status_code = 401


class Forbidden(GatewayError):
    status_code = 403


class FeatureOff(GatewayError):
    status_code = 409


class ExportNotReady(GatewayError):
    status_code = 409


class ExportFileGone(GatewayError):
    status_code = 410


class DatasetUnknown(GatewayError):
    status_code = 422
    field = "table_name"


class InvalidRequest(GatewayError):
    status_code = 422


class ExportConflict(GatewayError):
    status_code = 409


class TooManyExports(GatewayError):
    status_code = 429

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_seconds)}


class TooManyRows(GatewayError):
    status_code = 413


class TooManyStreams(GatewayError):
    status_code = 429
    headers = {"Retry-After": "1"}  # noqa: RUF012 (never mutated)


class ServiceUnavailable(GatewayError):
    status_code = 503


class MalformedBody(GatewayError):
    """A body that cannot be read as JSON at all; `reason` is the `body` field's message."""

    status_code = 422

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason

    def field_errors(self) -> list[dict[str, str]]:
        return [{"field": "body", "message": self.reason}]

    @classmethod
    def not_utf8(cls) -> MalformedBody:
        return cls("request body is not valid JSON (it must be UTF-8 encoded)", reason="not valid UTF-8 JSON")

    @classmethod
    def nested_too_deeply(cls) -> MalformedBody:
        return cls(
            "request body is nested too deeply to parse; send a flat JSON object", reason="nested too deeply"
        )


def _error(
    status: int,
    message: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"detail": message, "errors": errors or []}
    return JSONResponse(status_code=status, content=body, headers=headers)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's).

    Asks each route whether it would take the request with another method, through `matches` only:
    FastAPI keeps included routers as opaque route objects.
    """
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, str]]]:
    problems = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return "request body is not valid JSON", [{"field": "body", "message": "not valid JSON"}]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "literal_error":
            message = f"must be one of {error.get('ctx', {}).get('expected', '')}"
        if error.get("type") == "extra_forbidden":
            message = "unknown field"
        problems.append({"field": _field(tuple(error.get("loc", ()))), "message": message})
    return "; ".join(f"{p['field']}: {p['message']}" for p in problems), problems


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        return _error(exc.status_code, str(exc), exc.field_errors(), exc.headers)

    @app.exception_handler(AuthError)
    async def _auth_error(_: Request, exc: AuthError) -> JSONResponse:
        return _error(401, str(exc), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _UNPARSEABLE_BODY:
            # FastAPI's answer to a body its JSON parser raised on: invalid UTF-8, or nesting deeper
            # than Python's recursion limit (RecursionError)
            too_deep = isinstance(exc.__cause__, RecursionError)
            malformed = MalformedBody.nested_too_deeply() if too_deep else MalformedBody.not_utf8()
            return _error(422, str(malformed), malformed.field_errors())
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
            message = f"{request.method} is not allowed on {request.url.path}; allowed: {headers['Allow']}"
        elif exc.status_code == 404:
            message = f"no such path: {request.url.path}"
        else:
            message = str(exc.detail)
        return _error(exc.status_code, message, headers=headers or None)

    @app.exception_handler(AuthUnavailable)
    async def _auth_unavailable(_: Request, exc: AuthUnavailable) -> JSONResponse:
        log.warning("token keys unavailable: %s", exc)
        response = _error(503, "the identity provider is unavailable; retry in a few seconds")
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, problems = _validation_message(exc)
        return _error(422, message, problems)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _db_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("export DB unavailable: %s", exc)
        return _error(503, "the export database is unavailable; retry in a few seconds")

    @app.exception_handler(BotoCoreError)
    @app.exception_handler(ClientError)
    async def _storage_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("object storage unavailable: %s", exc)
        response = _error(
            503, "the object storage is unavailable; nothing was changed, retry in a few seconds"
        )
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(DBAPIError)
    async def _db_error(_: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return _error(503, "the export database connection was lost; retry in a few seconds")
        raise exc

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette calls this outside every middleware, then re-raises `exc` so the server logs its
        # traceback: the answer keeps the contract and carries no internals.
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return _error(500, "the server failed to answer this request; it was logged, retry later")
