"""Domain errors of the gateway and the one place they become HTTP answers.

GatewayError
├── ExportNotFound     → 404
├── ExportNotReady     → 409 (a download of an export that has no file yet)
├── ExportFileGone     → 410 (the file expired or was deleted; export again)
├── DatasetUnknown     → 422 (lists the valid dataset ids)
├── ExportConflict     → 409 (the export's state does not allow the operation)
├── InvalidRequest     → 422 (a column, filter, format or cursor not accepted; names the valid choices)
├── TooManyExports     → 429 + Retry-After (the owner's PENDING + RUNNING exports are at the cap)
└── ServiceUnavailable → 503 (a dependency is down; retry later)
AuthError (api.security) → 401
AuthUnavailable (api.security) → 503 (the identity provider's keys could not be fetched)
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.security import AuthError, AuthUnavailable

log = logging.getLogger(__name__)


class GatewayError(Exception):
    status_code = 400


class ExportNotFound(GatewayError):
    status_code = 404

    def __init__(self, reference_id: str) -> None:
        super().__init__(f"export {reference_id!r} not found")


class ExportNotReady(GatewayError):
    status_code = 409


class ExportFileGone(GatewayError):
    status_code = 410


class DatasetUnknown(GatewayError):
    status_code = 422


class InvalidRequest(GatewayError):
    status_code = 422


class ExportConflict(GatewayError):
    status_code = 409


class TooManyExports(GatewayError):
    status_code = 429

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_seconds)}


class ServiceUnavailable(GatewayError):
    status_code = 503


def _error(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message, **extra})


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
        response = _error(exc.status_code, str(exc))
        response.headers.update(getattr(exc, "headers", {}))
        return response

    @app.exception_handler(AuthError)
    async def _auth_error(_: Request, exc: AuthError) -> JSONResponse:
        response = _error(401, str(exc))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(AuthUnavailable)
    async def _auth_unavailable(_: Request, exc: AuthUnavailable) -> JSONResponse:
        log.warning("token keys unavailable: %s", exc)
        response = _error(503, "the identity provider is unavailable; retry in a few seconds")
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, problems = _validation_message(exc)
        return _error(422, message, errors=problems)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _db_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("export DB unavailable: %s", exc)
        return _error(503, "the export database is unavailable; retry in a few seconds")

    @app.exception_handler(BotoCoreError)
    @app.exception_handler(ClientError)
    async def _storage_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("object storage unavailable: %s", exc)
        response = _error(503, "the object storage is unavailable; nothing was changed, retry in a few seconds")
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(DBAPIError)
    async def _db_error(_: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return _error(503, "the export database connection was lost; retry in a few seconds")
        raise exc
