"""Resources of the integration tier, built from the test session's settings like the op builds them."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest

from export_engine.core.catalog import Catalog, Dataset, load_catalog
from export_engine.db.migrate import upgrade
from export_engine.runs.resources import S3StorageResource, SourceDatabaseResource
from export_engine.settings import Settings, get_settings


@pytest.fixture(scope="session")
def settings(stack, settings: Settings) -> Settings:
    """The integration tier writes export rows of runs that exist in no Dagster instance (in-process
    runs, made-up run ids): its own export DB keeps them away from the e2e stack's reconciler, which
    would rightly fail them."""
    url = stack.postgres.ensure_database("exports_integration")
    upgrade(url)
    return settings.model_copy(update={"database_url": url})


@pytest.fixture
def op_settings(stack, settings, monkeypatch) -> Iterator[None]:
    """The op reads its settings (catalog path, deadline) from the environment, as in a run worker."""
    for name in ("CATALOG_PATH", "SOURCE_DATABASE_URL"):
        monkeypatch.setenv(name, stack.env[name])
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("EXPORT_MAX_RUNTIME_SECONDS", "3600")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def catalog(settings) -> Catalog:
    return load_catalog(settings.catalog_path)


@pytest.fixture(scope="session")
def source(settings) -> SourceDatabaseResource:
    return SourceDatabaseResource.from_settings(settings)


@pytest.fixture(scope="session")
def storage(settings) -> S3StorageResource:
    return S3StorageResource.from_settings(settings)


@pytest.fixture(scope="session")
def exploding(stack, catalog) -> Dataset:
    """`transactions` through a view that raises division_by_zero at its 80,000th row (~10 MB in):
    a failure deep in the stream, after whole parts were uploaded. Owner column `status` ('posted')."""
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE OR REPLACE VIEW exploding AS SELECT t.*, "
            "1 / (row_number() OVER (ORDER BY id) - 80000) AS boom FROM transactions t"
        )
        cur.execute("GRANT SELECT ON exploding TO export_reader")
    base = catalog.get("transactions")
    return Dataset(
        **{
            **base.__dict__,
            "table": "exploding",
            "owner_column": "status",
            "columns": {**base.columns, "boom": "int"},
        }
    )
