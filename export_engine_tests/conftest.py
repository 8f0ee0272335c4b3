"""Shared fixtures. The stack is started once per test session, from the same code `make run` uses.

Tiers (directories): unit (pure), integration (real PostgreSQL + real S3 server over HTTP),
e2e (adds the Dagster webserver, the daemon launching real runs, and the gateway under uvicorn).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.processes import free_port
from devstack.stack import LocalStack, Ports
from export_engine.settings import DEV_JWT_SECRET, Settings
from export_engine_tests import faults

SEED_ROWS = 100_000
TELEGRAM_TOKEN = (
    "123456:TEST-token"  # the e2e stack's bot talks to a fake Bot API (notify_peers.FakeTelegram)
)
TELEGRAM_SECRET = "e2e-telegram-secret-token"
TELEGRAM_PORT = free_port()
EXPORT_MAX_RUNTIME_SECONDS = 90  # short, so the deadline test is quick; normal test exports take seconds
_EXTERNAL = (
    "DATABASE_URL",
    "DAGSTER_PG_URL",
    "SOURCE_DATABASE_URL",
    "S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "JWT_SECRET",
    "DAGSTER_HOME",
)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """PostgreSQL (export, Dagster and seeded transactions DBs) and the S3 server; services start on demand."""
    home = Path(tempfile.mkdtemp(prefix="export-engine-test-"))
    environ = {k: v for k, v in os.environ.items() if k not in _EXTERNAL}
    local = LocalStack(home, Ports.free(), environ=environ)
    try:
        env = local.start_storage()
        local.seed(SEED_ROWS)
        faults.install(env["SOURCE_ADMIN_URL"])
        env["ENVIRONMENT"] = "development"  # the gateway accepts the dev JWT secret the tests sign with
        env["METRICS_CACHE_SECONDS"] = "0"  # the e2e metric tests compare two scrapes seconds apart
        env["EXPORT_MAX_RUNTIME_SECONDS"] = str(EXPORT_MAX_RUNTIME_SECONDS)
        env["HEARTBEAT_TIMEOUT_SECONDS"] = "15"
        env["RUN_RETRY_GRACE_SECONDS"] = "20"  # well past Dagster's own retry (one 5 s daemon tick)
        env["TELEGRAM_BOT_TOKEN"] = TELEGRAM_TOKEN
        env["TELEGRAM_API_URL"] = f"http://127.0.0.1:{TELEGRAM_PORT}"
        env["TELEGRAM_WEBHOOK_SECRET"] = TELEGRAM_SECRET
        env["WEBHOOK_RETRY_BASE_SECONDS"] = "1"
        env["CATALOG_PATH"] = str(
            faults.write_test_catalog(Settings.model_fields["catalog_path"].default, home / "catalog.yaml")
        )
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def running_stack(stack: LocalStack) -> LocalStack:
    """The stack plus Dagster webserver + daemon and the gateway."""
    if not stack.workers:
        stack.start_services()
    return stack


@pytest.fixture(scope="session")
def settings(stack: LocalStack) -> Settings:
    env = stack.env
    return Settings(
        environment="development",
        metrics_cache_seconds=0,
        database_url=env["DATABASE_URL"],
        source_database_url=env["SOURCE_DATABASE_URL"],
        s3_endpoint_url=env["S3_ENDPOINT_URL"],
        s3_bucket=env["S3_BUCKET"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        jwt_secret=DEV_JWT_SECRET,
        multipart_part_size_mb=5,
        catalog_path=env["CATALOG_PATH"],
    )
