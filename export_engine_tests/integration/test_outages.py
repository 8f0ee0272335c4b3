"""Dependencies that are down: clear 503s, nothing half-written. Real servers, just not listening."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.security import issue_token
from export_engine.local_stack.processes import free_port
from export_engine.settings import DEV_JWT_SECRET

BODY = {"table_name": "transactions", "date_from": "2024-01-01", "date_to": "2024-01-31"}


@pytest.fixture
def headers():
    return {"Authorization": f"Bearer {issue_token('demo-user-1', secret=DEV_JWT_SECRET)}"}


def test_export_db_down_is_503(settings, headers):
    dead = settings.model_copy(
        update={"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/exports"}
    )
    with TestClient(create_app(dead), raise_server_exceptions=False) as client:
        for response in (
            client.post("/export", json=BODY, headers=headers),
            client.get("/export/00000000-0000-0000-0000-000000000000", headers=headers),
        ):
            assert response.status_code == 503
            assert response.json()["detail"] == "the export database is unavailable; retry in a few seconds"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "export_db" in ready.json()["detail"]


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
