"""Metrics derived from real exports, JSON request logs, and readiness of the running stack."""

from __future__ import annotations

import json

import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e


def _scrape(api) -> dict[tuple[str, tuple], float]:
    response = api.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_follow_real_exports(api):
    labels = (("dataset", "transactions"), ("format", "csv"))
    api.drain()  # nothing else may finish between the two scrapes
    before = _scrape(api)
    params = dict(table_name="transactions", date_from="2019-06-01", date_to="2019-06-30")
    created = api.post("demo-user-11", **params).json()
    export = api.wait("demo-user-11", created["reference_id"])
    assert export["status"] == "COMPLETED"
    assert api.post("demo-user-11", **params).status_code == 200  # a reuse
    after = _scrape(api)

    def delta(name: str, sample_labels: tuple = labels) -> float:
        return after.get((name, sample_labels), 0) - before.get((name, sample_labels), 0)

    assert delta("export_exports_created_total") == 1
    assert delta("export_exports_reused_total") == 1
    assert delta("export_rows_exported_total") == export["row_count"]
    assert delta("export_duration_seconds_count", ()) == 1
    assert delta("export_file_size_bytes_count", ()) == 1
    assert delta("export_file_size_bytes_sum", ()) == export["file_size_bytes"]
    assert after[("export_exports", (("status", "COMPLETED"),))] >= 2
    with psycopg2.connect(api.stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE status = 'FAILED'), "
            "count(*) FILTER (WHERE reused_from_ref IS NULL) FROM exports"
        )
        failed, ran = cur.fetchone()
    assert ran >= 1
    assert after[("export_failure_ratio", ())] == pytest.approx(failed / ran)
    route = (("method", "POST"), ("route", "/export"), ("status", "200"))
    assert delta("export_api_request_duration_seconds_count", route) >= 1


def test_request_logs_are_json_with_request_and_reference_ids(api):
    response = api.http.post(
        "/export",
        json={"table_name": "transactions", "date_from": "2019-07-01", "date_to": "2019-07-31"},
        headers={**api.headers("demo-user-12"), "X-Request-ID": "trace-me-123"},
    )
    assert response.headers["x-request-id"] == "trace-me-123"
    reference_id = response.json()["reference_id"]
    api.wait("demo-user-12", reference_id)
    lines = [
        json.loads(line)
        for line in (api.stack.home / "logs" / "api.log").read_text().splitlines()
        if line.startswith("{")
    ]
    mine = [line for line in lines if line.get("request_id") == "trace-me-123"]
    created = next(line for line in mine if line["message"] == "export created")
    assert created["reference_id"] == reference_id
    request_line = next(line for line in mine if line["message"] == "request")
    assert (
        request_line["method"] == "POST"
        and request_line["status"] == 202
        and request_line["route"] == "/export"
    )
    assert request_line["duration_ms"] > 0


def test_readyz_checks_every_dependency(api):
    response = api.http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "checks": {"export_db": "ok", "s3_bucket": "ok", "dagster": "ok"},
        "notifications": {  # the test stack's bot talks to a fake Bot API (conftest)
            "webhooks": "on",
            "telegram": "on (updates at POST /notifications/telegram/webhook)",
        },
    }
