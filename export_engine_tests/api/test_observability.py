"""Metrics and readiness of the gateway in-process: bounded series, cheap calls, an internal port."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client import CollectorRegistry

from api.observability.metrics import HTTP_LATENCY
from api.routes import health
from devstack.processes import free_port
from export_engine_tests.api.conftest import auth


def _latency_series() -> set[tuple[str, str, str]]:
    (family,) = HTTP_LATENCY.collect()
    return {(s.labels["method"], s.labels["route"], s.labels["status"]) for s in family.samples}


def test_polling_50_exports_adds_no_latency_series(make_client):
    client = make_client()
    headers = auth()
    assert client.get(f"/export/{uuid.uuid4()}", headers=headers).status_code == 404
    before = _latency_series()
    assert ("GET", "/export/{reference_id}", "404") in before

    for _ in range(50):
        reference_id = str(uuid.uuid4())
        assert client.get(f"/export/{reference_id}", headers=headers).status_code == 404
        assert client.get(f"/export/{reference_id}/download", headers=headers).status_code == 404

    after = _latency_series()
    assert after - before <= {("GET", "/export/{reference_id}/download", "404")}
    assert not any(reference_id in route for _, route, _ in after)


def test_unknown_paths_share_one_series(make_client):
    client = make_client()
    for i in range(5):
        assert client.get(f"/no-such-page/{i}").status_code == 404
    routes = {route for _, route, status in _latency_series() if status == "404"}
    assert not any(route.startswith("/no-such-page") for route in routes)
    assert "unmatched" in routes


def test_readiness_is_checked_at_most_every_two_seconds(make_client, monkeypatch):
    calls: list[str] = []

    def check(name: str):
        def run(request) -> None:
            calls.append(name)

        return run

    monkeypatch.setattr(health, "_CHECKS", {name: check(name) for name in health._CHECKS})
    client = make_client()
    for _ in range(20):
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["checks"] == {"export_db": "ok", "s3_bucket": "ok", "dagster": "ok"}
    assert sorted(calls) == ["dagster", "export_db", "s3_bucket"]
    assert health.READINESS_CACHE_SECONDS == 2.0


def test_metrics_and_readiness_move_to_the_internal_port(make_client, monkeypatch):
    port = free_port()
    monkeypatch.setattr(health, "_CHECKS", {name: (lambda request: None) for name in health._CHECKS})
    client = make_client(internal_port=port)
    registry = CollectorRegistry()
    registry.register(HTTP_LATENCY)
    client.app.state.metrics_registry = registry  # the export aggregates need a database; not this test's
    with client:  # the lifespan starts the internal server
        assert client.get("/metrics").status_code == 404
        assert client.get("/readyz").status_code == 404
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/datasets", headers=auth()).status_code == 200
        internal = f"http://127.0.0.1:{port}"
        scraped = httpx.get(f"{internal}/metrics")
        assert scraped.status_code == 200
        assert "export_api_request_duration_seconds" in scraped.text
        assert httpx.get(f"{internal}/readyz").json()["status"] == "ok"
        assert httpx.get(f"{internal}/datasets").status_code == 404  # only health lives there
    try:
        httpx.get(f"{internal}/metrics")
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the internal port is still served after the app stopped")


def test_a_request_id_is_echoed_only_when_it_looks_like_one(make_client):
    client = make_client()
    assert client.get("/healthz", headers={"X-Request-ID": "trace-me-123"}).headers["x-request-id"] == (
        "trace-me-123"
    )
    for offered in ("x" * 129, "two words", "evil\tlog"):
        echoed = client.get("/healthz", headers={"X-Request-ID": offered}).headers["x-request-id"]
        assert echoed != offered and len(echoed) == 32


def test_readiness_says_whether_telegram_is_on_without_failing_on_it(make_client, monkeypatch):
    monkeypatch.setattr(health, "_CHECKS", {name: (lambda request: None) for name in health._CHECKS})
    off = make_client().get("/readyz")
    assert off.status_code == 200
    assert off.json()["notifications"] == {
        "webhooks": "on",
        "telegram": "off: set TELEGRAM_BOT_TOKEN to turn it on",
    }
    on = make_client(telegram_bot_token="123:abc", telegram_webhook_secret="s3cret").get("/readyz")
    assert on.status_code == 200
    assert on.json()["notifications"]["telegram"] == "on (updates at POST /notifications/telegram/webhook)"
