"""The OpenAPI document is the contract: every status a route can answer, one error body, the bearer scheme.

Routes declare their error statuses with `errors(...)` (so the declaration sits next to the code that
raises them), and the authenticated routers carry `bearer` (a no-op dependency that only puts the
scheme into the document; `api.deps.get_principal` does the checking and words the 401s).
`install_openapi` then replaces FastAPI's default 422 body, which the gateway never sends, with
`ErrorBody`, documents `/metrics` as the Prometheus text it is, and lists the catalog's datasets as
the values `table_name` takes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPBearer

from api.errors import ErrorBody

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    scheme_name="bearerAuth",
    description="HS256 JWT with `sub` (the owner whose rows are exported) and `exp`",
)

_WHY = {
    401: "no usable bearer token (missing, malformed, expired, wrong signature)",
    403: "Telegram updates are not accepted here (TELEGRAM_WEBHOOK_SECRET is unset)",
    404: "no such export (or webhook endpoint) for this caller (another owner's is a 404 too)",
    409: "the export's state does not allow this (no file yet, or already finished)",
    410: "the export's file was deleted or expired; request the export again",
    413: "the export is larger than a synchronous answer may be; `detail` says to use POST /export",
    422: "the request is not valid; `detail` says why and `errors` names each field",
    429: "every synchronous stream slot is busy; retry after `Retry-After` seconds",
    503: "a dependency (the export database, the source database) is unavailable; retry shortly",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these error statuses, each with the one `ErrorBody`."""
    return {status: {"model": ErrorBody, "description": _WHY[status]} for status in statuses}


_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.get("responses", {})
            invalid = responses.get("422")
            if invalid is not None:
                invalid["description"] = _WHY[422]
                invalid["content"] = {"application/json": {"schema": _ERROR_REF}}
            if path == "/metrics":
                responses["200"] = {
                    "description": "Prometheus text exposition",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
    for name in _VALIDATION_SCHEMAS:
        components.pop(name, None)
    catalog = getattr(app.state, "catalog", None)
    request_body = components.get("ExportRequest", {}).get("properties", {})
    if catalog is not None and "table_name" in request_body:
        request_body["table_name"]["enum"] = catalog.names  # the datasets this gateway serves
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
