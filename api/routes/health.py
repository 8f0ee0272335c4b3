"""Liveness, readiness and metrics: unauthenticated, for load balancers and Prometheus.

`router` (liveness) is always on the public port. `internal_router` (readiness, metrics) is too unless
`INTERNAL_PORT` is set, in which case only the internal port serves it (`api.main`). Both are cheap to
call often: readiness answers from a result at most `READINESS_CACHE_SECONDS` old, metrics from
aggregates at most `METRICS_CACHE_SECONDS` old.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

router = APIRouter(tags=["health"])
internal_router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

READINESS_CACHE_SECONDS = 2.0  # a load balancer hammering /readyz costs three checks per 2 s, not per call


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up; says nothing about dependencies (so a DB outage doesn't restart every gateway)."""
    return {"status": "ok"}


def _check_database(request: Request) -> None:
    with request.app.state.sessions() as session:
        session.execute(text("SELECT 1"))


def _check_bucket(request: Request) -> None:
    storage = request.app.state.storage
    storage.client.head_bucket(Bucket=storage.bucket)


def _check_dagster(request: Request) -> None:
    settings = request.app.state.settings
    url = f"http://{settings.dagster_host}:{settings.dagster_port}/graphql"
    response = httpx.post(url, json={"query": "{ version }"}, timeout=3)
    response.raise_for_status()


_CHECKS = {"export_db": _check_database, "s3_bucket": _check_bucket, "dagster": _check_dagster}


class Readiness(BaseModel):
    status: str
    detail: str | None = None
    checks: dict[str, str]
    notifications: dict[str, str] | None = None  # what is on; an unconfigured channel is not a failure


@internal_router.get(
    "/readyz",
    responses={
        200: {"model": Readiness, "description": "every dependency answers"},
        503: {"model": Readiness, "description": "`detail` and `checks` name what does not answer"},
    },
)
async def readyz(request: Request) -> JSONResponse:
    """Ready when the export DB, the S3 bucket and Dagster's GraphQL API all answer; 503 names what doesn't."""
    state = request.app.state
    cached = getattr(state, "readiness", None)
    if cached is not None and time.monotonic() - cached[0] < READINESS_CACHE_SECONDS:
        results = cached[1]
    else:
        results = await _check_all(request)
        state.readiness = (time.monotonic(), results)
    failing = sorted(name for name, result in results.items() if result != "ok")
    notifications = _notifications(request)
    if failing:
        return JSONResponse(
            status_code=503,
            content={
                "status": "unavailable",
                "detail": f"not ready: {', '.join(failing)}",
                "checks": results,
                "notifications": notifications,
            },
        )
    return JSONResponse(content={"status": "ok", "checks": results, "notifications": notifications})


def _notifications(request: Request) -> dict[str, str]:
    settings = request.app.state.settings
    if not settings.telegram_enabled:
        telegram = "off: set TELEGRAM_BOT_TOKEN to turn it on"
    elif settings.telegram_webhook_secret is None:
        telegram = "on (updates by long polling)"
    else:
        telegram = "on (updates at POST /notifications/telegram/webhook)"
    return {"webhooks": "on", "telegram": telegram}


async def _check_all(request: Request) -> dict[str, str]:
    async def run(name: str) -> tuple[str, str]:
        try:
            await asyncio.wait_for(asyncio.to_thread(_CHECKS[name], request), timeout=5)
            return name, "ok"
        except Exception as exc:
            log.warning("readiness check %s failed: %s", name, exc)
            return name, f"unavailable: {type(exc).__name__}"

    return dict(await asyncio.gather(*(run(name) for name in _CHECKS)))


@internal_router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
