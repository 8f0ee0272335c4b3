"""Prometheus metrics.

Exports run in Dagster run processes (on other machines in production), so the export numbers are
derived from the export DB rather than counted in this process; they are right no matter how many
gateways or run workers there are. The aggregates are computed at most once per `METRICS_CACHE_SECONDS`
(a scrape in between is answered from the last result), so scrapes, however frequent, cost the export DB
a bounded amount. Only HTTP latency is measured in-process, labelled with the route template
(`/export/{reference_id}`), never the raw path, so the number of series is bounded by the routes.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.observability.logging import request_id_var

log = logging.getLogger("api.request")

DURATION_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
SIZE_BUCKETS = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10)

HTTP_LATENCY = Histogram(
    "export_api_request_duration_seconds",
    "Gateway request latency by route template",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=None,  # registered in each app's registry by `build_registry`
)


def build_registry(sessions: sessionmaker[Session], *, cache_seconds: float = 15) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(HTTP_LATENCY)
    registry.register(ExportMetricsCollector(sessions, cache_seconds=cache_seconds))
    ProcessCollector(registry=registry)
    return registry


# A caller's X-Request-ID is echoed and logged only if it looks like an id; otherwise a new one is made.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestMetricsMiddleware:
    """Times every request, logs one JSON line for it, and echoes/assigns `X-Request-ID`.

    Plain ASGI rather than Starlette's `BaseHTTPMiddleware`, which runs the app in a second task and
    relays the response through a memory stream: ~7 % of the gateway's CPU per POST in a burst (py-spy).
    The time is taken as the response's last body message is handed on (or when the app fails).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = Headers(scope=scope).get("x-request-id", "")
        request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        recorded: float | None = None

        def record() -> float:
            """Observe once, before the response's last byte leaves: a client that scrapes /metrics right
            after its answer arrived must find its own request counted (it raced the `finally` before)."""
            nonlocal recorded
            if recorded is None:
                recorded = time.perf_counter() - started
                HTTP_LATENCY.labels(scope["method"], _route_template(Request(scope)), str(status)).observe(
                    recorded
                )
            return recorded

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            elapsed = record()
            route = _route_template(Request(scope))
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)


def _route_template(request: Request) -> str:
    """The template of the route that handled the request (`/export/{reference_id}`), never the raw path.

    The router records the matched route in the scope; requests that never reached a route (404, or
    refused by a middleware before routing) are matched here against the top-level routes, and fall
    back to "unmatched". A raw path would add a series per export id polled.
    """
    route = request.scope.get("route")
    if route is None:
        for candidate in request.app.router.routes:
            match, _ = candidate.matches(request.scope)
            if match is Match.FULL:
                route = candidate
                break
    path = getattr(route, "path_format", None)  # the template without convertors (`:export_id`)
    return path if isinstance(path, str) else "unmatched"


_TOTALS_SQL = text(
    """
    SELECT table_name, format,
           count(*) FILTER (WHERE reused_from_ref IS NULL) AS created,
           count(*) FILTER (WHERE reused_from_ref IS NOT NULL) AS reused,
           coalesce(sum(row_count) FILTER (WHERE reused_from_ref IS NULL AND completed_at IS NOT NULL
                                           AND status IN ('COMPLETED', 'SUPERSEDED', 'EXPIRED')), 0) AS rows
    FROM exports GROUP BY table_name, format
    """
)
_STATUS_SQL = text("SELECT status, count(*) FROM exports GROUP BY status")
_FAILURES_SQL = text(
    "SELECT coalesce(split_part(error, ':', 1), 'unknown') AS reason, count(*) FROM exports "
    "WHERE status = 'FAILED' GROUP BY 1"
)
_FINISHED = (
    "FROM exports WHERE reused_from_ref IS NULL AND started_at IS NOT NULL AND completed_at IS NOT NULL "
    "AND status IN ('COMPLETED', 'SUPERSEDED', 'EXPIRED')"
)


def _histogram_sql(expression: str, bounds: tuple[float, ...]) -> str:
    """Cumulative bucket counts, the sum and the count of `expression`, aggregated in the database."""
    buckets = ", ".join(f"count(*) FILTER (WHERE {expression} <= {b})" for b in bounds)
    return f"SELECT {buckets}, count({expression}), coalesce(sum({expression}), 0) {_FINISHED}"


_DURATION_SQL = text(_histogram_sql("extract(epoch FROM completed_at - started_at)", DURATION_BUCKETS))
_SIZE_SQL = text(_histogram_sql("file_size_bytes", SIZE_BUCKETS))


class ExportMetricsCollector(Collector):
    """A few aggregate queries over the export DB, at most once per `cache_seconds` (0: every scrape)."""

    def __init__(self, sessions: sessionmaker[Session], *, cache_seconds: float = 15) -> None:
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()  # concurrent scrapes wait for one computation
        self._families: list[Metric] = []
        self._computed_at = -float("inf")

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._computed_at >= self._cache_seconds or not self._families:
                self._families = list(self._compute())
                self._computed_at = time.monotonic()
            families = self._families
        yield from families

    def _compute(self) -> Iterator[Metric]:
        with self._sessions() as session:
            totals = session.execute(_TOTALS_SQL).all()
            statuses = session.execute(_STATUS_SQL).all()
            failures = session.execute(_FAILURES_SQL).all()
            durations = session.execute(_DURATION_SQL).one()
            sizes = session.execute(_SIZE_SQL).one()

        created = CounterMetricFamily(
            "export_exports_created", "Exports that ran (not reuses)", labels=["dataset", "format"]
        )
        reused = CounterMetricFamily(
            "export_exports_reused", "Requests served from an existing file", labels=["dataset", "format"]
        )
        rows = CounterMetricFamily(
            "export_rows_exported", "Rows written by finished exports", labels=["dataset", "format"]
        )
        for table_name, fmt, n_created, n_reused, n_rows in totals:
            created.add_metric([table_name, fmt], n_created)
            reused.add_metric([table_name, fmt], n_reused)
            rows.add_metric([table_name, fmt], int(n_rows))
        yield from (created, reused, rows)

        by_status = GaugeMetricFamily("export_exports", "Exports by current status", labels=["status"])
        counts: dict[str, int] = dict(statuses)
        for status in ("PENDING", "RUNNING", "COMPLETED", "FAILED", "SUPERSEDED", "EXPIRED", "CANCELED"):
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status

        failed = CounterMetricFamily("export_failures", "Failed exports by reason", labels=["reason"])
        for reason, n in failures:
            failed.add_metric([reason], n)
        yield failed

        ran = sum(n for _, _, n, _, _ in totals)
        rate = GaugeMetricFamily("export_failure_ratio", "Failed exports / exports that ran")
        rate.add_metric([], (counts.get("FAILED", 0) / ran) if ran else 0.0)
        yield rate

        yield _histogram(
            "export_duration_seconds", "Run time of finished exports", durations, DURATION_BUCKETS
        )
        yield _histogram("export_file_size_bytes", "Size of exported files", sizes, SIZE_BUCKETS)


def _histogram(name: str, doc: str, row: tuple, bounds: tuple[float, ...]) -> HistogramMetricFamily:
    *cumulative, count, total = row
    buckets = [(str(float(b)), int(n)) for b, n in zip(bounds, cumulative, strict=True)]
    buckets.append(("+Inf", int(count)))
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], buckets, float(total))
    return family
