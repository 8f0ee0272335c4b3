"""Dependencies that are down: clear 503s, nothing half-written. Real servers, just not listening."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.security import issue_token
from devstack.processes import free_port
from export_engine.settings import DEV_JWT_SECRET
from export_engine_tests.tcp_proxy import TcpProxy

BODY = {"table_name": "transactions", "date_from": "2024-01-01", "date_to": "2024-01-31"}


@pytest.fixture
def headers():
    return {"Authorization": f"Bearer {issue_token('demo-user-1', secret=DEV_JWT_SECRET)}"}


def test_export_db_outage_is_503_and_the_gateway_recovers_by_itself(settings, headers):
    """The export DB goes away under a running gateway (connections reset), then comes back."""
    proxy = TcpProxy.in_front_of(settings.database_url)
    proxied = settings.model_copy(
        update={
            "database_url": proxy.url_for(settings.database_url),
            "dagster_port": free_port(),  # no Dagster here: the export stays PENDING for the orphan sensor
            "dagster_submit_timeout_seconds": 2,
        }
    )
    body = {
        "table_name": "transactions",
        "date_from": "2020-02-01",
        "date_to": "2020-02-29",
        "force_refresh": True,
    }
    missing = f"/export/{uuid.uuid4()}"
    try:
        with TestClient(create_app(proxied), raise_server_exceptions=False) as client:
            assert client.get(missing, headers=headers).status_code == 404  # pool warmed up

            proxy.down()
            for response in (
                client.post("/export", json=body, headers=headers),
                client.get(missing, headers=headers),
            ):
                assert response.status_code == 503
                assert (
                    response.json()["detail"] == "the export database is unavailable; retry in a few seconds"
                )
            assert "export_db" in client.get("/readyz").json()["detail"]

            proxy.up()  # the same app, not restarted: pooled connections are checked and replaced
            assert client.get(missing, headers=headers).status_code == 404
            created = client.post("/export", json=body, headers=headers)
            assert created.status_code == 202, created.text
            assert client.get(f"/export/{created.json()['reference_id']}", headers=headers).status_code == 200
    finally:
        proxy.close()


def test_dagster_down_still_accepts_the_export(settings, headers):
    """The export is committed PENDING; the orphan sensor submits it once Dagster is back."""
    no_dagster = settings.model_copy(
        update={"dagster_port": free_port(), "dagster_submit_timeout_seconds": 2}
    )
    with TestClient(create_app(no_dagster), raise_server_exceptions=False) as client:
        response = client.post("/export", json={**BODY, "force_refresh": True}, headers=headers)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "PENDING"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"] == "not ready: dagster"
        assert ready.json()["checks"]["export_db"] == "ok"
