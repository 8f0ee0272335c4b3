"""FastAPI dependencies as `Annotated` aliases; the token is decoded once per request."""

from __future__ import annotations

import email.message
import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import MalformedBody
from api.launcher import RunLauncher
from api.security import AuthError, Principal, TokenVerifier
from export_engine.core.catalog import Catalog
from export_engine.delivery.bucket import S3Storage
from export_engine.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


_bearer = HTTPBearer(auto_error=False, description="a JWT whose `sub` is the owner of the exported rows")


def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """HTTPBearer declares the scheme in the OpenAPI document; the messages stay ours."""
    if credentials is None:
        if not request.headers.get("authorization"):
            raise AuthError("missing bearer token: send 'Authorization: Bearer <JWT>'")
        raise AuthError("Authorization header must be 'Bearer <JWT>'")
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.decode(credentials.credentials.strip())


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_storage(request: Request) -> S3Storage:
    return request.app.state.storage


StorageDep = Annotated[S3Storage, Depends(get_storage)]


def get_launcher(request: Request) -> RunLauncher:
    return request.app.state.launcher


LauncherDep = Annotated[RunLauncher, Depends(get_launcher)]


def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


async def require_utf8_json(request: Request) -> None:
    """JSON bodies are UTF-8 (RFC 8259 §8.1). `json.loads` on bytes also detects UTF-16 and UTF-32 (even
    without a BOM), which FastAPI would accept: this app-wide dependency refuses what `json` would read
    as another encoding (the body is already read and cached by then)."""
    content_type = request.headers.get("content-type")
    if not content_type or request.method not in ("POST", "PUT", "PATCH"):
        return
    parsed = email.message.Message()
    parsed["content-type"] = content_type
    subtype = parsed.get_content_subtype()
    if parsed.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return
    body = await request.body()
    if body and json.detect_encoding(body) not in ("utf-8", "utf-8-sig"):
        raise MalformedBody.not_utf8()  # (bytes that are not UTF-8 at all fail in FastAPI's own parse)
