"""FastAPI dependencies as `Annotated` aliases; the token is decoded once per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.launcher import RunLauncher
from api.security import AuthError, Principal, decode_token
from export_engine.catalog import Catalog
from export_engine.resources import S3StorageResource
from export_engine.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_principal(request: Request, settings: SettingsDep) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise AuthError("missing bearer token: send 'Authorization: Bearer <JWT>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization header must be 'Bearer <JWT>'")
    return decode_token(token.strip(), secret=settings.jwt_secret, algorithm=settings.jwt_algorithm)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_storage(request: Request) -> S3StorageResource:
    return request.app.state.storage


StorageDep = Annotated[S3StorageResource, Depends(get_storage)]


def get_launcher(request: Request) -> RunLauncher:
    return request.app.state.launcher


LauncherDep = Annotated[RunLauncher, Depends(get_launcher)]


def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
