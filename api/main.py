"""The gateway: authenticate, validate, dedup, hand the export to Dagster.

Run with `uvicorn api.main:app` (the dev stack does); `create_app(settings)` for tests.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.launcher import DagsterRunLauncher, RunLauncher
from api.observability import RequestMetricsMiddleware, build_registry, configure_logging
from api.routes import datasets, exports, filter_values, health
from api.routes.docs import install_docs
from api.routes.web import install_web
from api.source_lookups import SourceLookups
from export_engine.catalog import load_catalog
from export_engine.db.session import session_factory
from export_engine.resources import S3StorageResource
from export_engine.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, launcher: RunLauncher | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    settings.check_secrets()
    if settings.using_dev_secret:
        log.warning("JWT_SECRET is unset: using the published development secret")
    app = FastAPI(
        title="Export engine",
        version="0.1.0",
        description="Asynchronous bulk exports with signed downloads",
        docs_url=None,  # served from local assets by install_docs: the default pages need a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.catalog = load_catalog(settings.catalog_path)
    app.state.sessions = session_factory(settings.database_url)
    app.state.storage = S3StorageResource.from_settings(settings)
    app.state.source_lookups = SourceLookups.from_dsn(settings.source_database_url)
    app.state.launcher = launcher or DagsterRunLauncher(
        settings.dagster_host,
        settings.dagster_port,
        timeout_seconds=settings.dagster_submit_timeout_seconds,
        max_runtime_seconds=settings.export_max_runtime_seconds,
    )
    app.state.metrics_registry = build_registry(app.state.sessions)
    app.add_middleware(RequestMetricsMiddleware)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(exports.router)
    app.include_router(datasets.router)
    app.include_router(filter_values.router)
    install_docs(app)
    install_web(app)
    return app


def __getattr__(name: str) -> FastAPI:
    """`uvicorn api.main:app` builds the app on first access, not at import time."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
