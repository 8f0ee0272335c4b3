"""The gateway in-process, with no stack: `create_app` with a fake launcher and `dependency_overrides`.

Nothing here listens on a port or reaches a database: the export DB URL points at a closed port, and
the routes under test either refuse the request before touching it or get a fake session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import get_session
from api.main import create_app
from api.security import issue_token
from devstack.processes import free_port
from export_engine.core.export_spec import ExportSpec
from export_engine.settings import DEV_JWT_SECRET, Settings

CLOSED = f"postgresql://nobody:secret-password@127.0.0.1:{free_port()}/nothing"


class FakeLauncher:
    """Records what the gateway asked Dagster to do."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, ExportSpec]] = []
        self.looked_first: list[bool] = []
        self.terminated: list[str] = []

    def submit(self, reference_id: str, spec: ExportSpec, *, look_first: bool = True) -> str:
        self.submitted.append((reference_id, spec))
        self.looked_first.append(look_first)
        return f"run-{len(self.submitted)}"

    def terminate(self, run_id: str) -> None:
        self.terminated.append(run_id)


class NoExports:
    """A session in which no export exists (GET of any id is a 404 without a database)."""

    def get(self, *args: Any, **kwargs: Any) -> None:
        return None


def gateway_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "development",
        "database_url": CLOSED,
        "source_database_url": CLOSED,
        "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",
        "aws_access_key_id": "k",
        "aws_secret_access_key": "s",
        "jwt_secret": DEV_JWT_SECRET,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher()


@pytest.fixture
def make_client(launcher: FakeLauncher) -> Iterator[Callable[..., TestClient]]:
    """`make_client(**settings)`: a client of a fresh app, its session replaced by `NoExports`."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        app: FastAPI = create_app(gateway_settings(**overrides), launcher=launcher)
        app.dependency_overrides[get_session] = NoExports
        client = TestClient(app, raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def auth(subject: str = "alice", *, secret: str = DEV_JWT_SECRET, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(subject, secret=secret, **claims)}"}
