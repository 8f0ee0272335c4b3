"""Logs, metrics and request tracing of the gateway."""

from api.observability.logging import configure_logging, request_id_var
from api.observability.metrics import ExportMetricsCollector, RequestMetricsMiddleware, build_registry

__all__ = [
    "ExportMetricsCollector",
    "RequestMetricsMiddleware",
    "build_registry",
    "configure_logging",
    "request_id_var",
]
