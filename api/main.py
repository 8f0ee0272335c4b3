"""The gateway: authenticate, validate, dedup, hand the export to Dagster.

Run with `uvicorn api.main:app` (the dev stack does); `create_app(settings)` for tests.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import Depends, FastAPI

from api.body_limit import BodyLimitMiddleware
from api.deps import require_utf8_json
from api.errors import install_error_handlers
from api.launcher import DagsterRunLauncher, RunLauncher
from api.observability import RequestMetricsMiddleware, build_registry, configure_logging
from api.openapi import install_openapi
from api.routes import analytics_exports, datasets, exports, filter_values, health, packages
from api.routes.docs import install_docs
from api.routes.notifications import install_notifications
from api.routes.seed002_records import router as seed002_router
from api.routes.seed004_exports import router as seed004_router
from api.routes.stream import install_streams
from api.routes.web import install_web
from api.security import TokenPolicy, TokenVerifier
from api.source_lookups import SourceLookups
from export_engine.core.catalog import load_catalog
from export_engine.db.session import session_factory
from export_engine.delivery.bucket import S3Storage
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
        lifespan=_serve_internal_port if settings.internal_port is not None else None,
        docs_url=None,  # served from local assets by install_docs: the default pages need a CDN
        redoc_url=None,
        dependencies=[Depends(require_utf8_json)],
    )
    app.state.settings = settings
    app.state.verifier = TokenVerifier(TokenPolicy.from_settings(settings))
    app.state.catalog = load_catalog(
        settings.catalog_path, default_max_span_days=settings.export_max_span_days
    )
    app.state.sessions = session_factory(settings.database_url)
    app.state.storage = S3Storage.from_settings(settings)
    app.state.source_lookups = SourceLookups.from_dsn(settings.source_database_url)
    app.state.launcher = launcher or DagsterRunLauncher(
        settings.dagster_host,
        settings.dagster_port,
        timeout_seconds=settings.dagster_submit_timeout_seconds,
        max_runtime_seconds=settings.export_max_runtime_seconds,
    )
    app.state.metrics_registry = build_registry(
        app.state.sessions, cache_seconds=settings.metrics_cache_seconds
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(RequestMetricsMiddleware)  # outermost: a refused body is timed and logged too
    install_error_handlers(app)
    app.include_router(health.router)
    if settings.internal_port is None:
        app.include_router(health.internal_router)
    else:
        internal = FastAPI(title="Export engine (internal)", docs_url=None, redoc_url=None, openapi_url=None)
        internal.state = app.state  # the same sessions, storage, registry and readiness cache
        internal.include_router(health.internal_router)
        app.state.internal_app = internal
    install_streams(app, settings)  # before `exports`: /export/stream is not an export id
    app.include_router(seed002_router)  # seed 002's API; before `exports`: /export/jobs is not an id
    app.include_router(exports.router)
    app.include_router(seed004_router)  # seed 004's API over the same service
    app.include_router(analytics_exports.router)  # seed 001's API over the same service
    app.include_router(packages.router)
    app.include_router(datasets.router)
    app.include_router(filter_values.router)
    install_notifications(app, settings)
    install_docs(app)
    install_web(app)
    install_openapi(app)
    return app


@asynccontextmanager
async def _serve_internal_port(app: FastAPI) -> AsyncIterator[None]:
    """/readyz and /metrics on `INTERNAL_PORT`, beside the public server, for as long as the app runs.

    A second uvicorn server on its own thread and event loop; the gateway does not start if the port
    cannot be bound (it would otherwise run without metrics and readiness).
    """
    settings: Settings = app.state.settings
    server = uvicorn.Server(
        uvicorn.Config(
            app.state.internal_app,
            host=settings.internal_host,
            port=settings.internal_port or 0,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, name="internal-port", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        await asyncio.sleep(0.05)
    if not server.started:
        raise RuntimeError(
            f"could not serve INTERNAL_PORT={settings.internal_port} on {settings.internal_host}"
        )
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join)


def __getattr__(name: str) -> FastAPI:
    """`uvicorn api.main:app` builds the app on first access, not at import time."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
