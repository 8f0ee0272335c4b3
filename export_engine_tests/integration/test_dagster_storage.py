"""Dagster's PostgreSQL storages as this project configures them (`export_engine.runs.dagster_storage`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event

from export_engine.runs.dagster_storage import WEBSERVER_POOL_SIZE, PooledPostgresRunStorage

pytestmark = pytest.mark.integration


@pytest.fixture
def run_storage(stack) -> Iterator[PooledPostgresRunStorage]:
    env = stack.env  # the parts dagster.yaml reads, with its psycopg2 scheme
    storage = PooledPostgresRunStorage(
        f"postgresql+psycopg2://{env['DAGSTER_PG_USER']}:{env['DAGSTER_PG_PASSWORD']}"
        f"@{env['DAGSTER_PG_HOST']}:{env['DAGSTER_PG_PORT']}/{env['DAGSTER_PG_DB']}"
    )
    yield storage
    storage.dispose()


def _catalog_queries(storage: PooledPostgresRunStorage) -> list[str]:
    """Statements sent from now on that read PostgreSQL's catalog (SQLAlchemy's schema reflection)."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        if "pg_catalog" in statement:
            seen.append(statement)

    event.listen(storage._engine, "before_cursor_execute", record)
    return seen


def test_a_schema_fact_is_asked_once_then_run_reads_never_reflect_again(run_storage):
    catalog_queries = _catalog_queries(run_storage)
    assert run_storage.has_run_stats_index_cols()  # asks PostgreSQL's catalog, unless already known
    catalog_queries.clear()

    for _ in range(3):  # each of these used to reflect the runs table's columns again
        run_storage.get_run_records(limit=1)
        assert run_storage.has_run_stats_index_cols()

    assert catalog_queries == []


def test_the_webservers_pool_holds_several_connections_with_dagsters_statement_timeout(run_storage):
    run_storage.optimize_for_webserver(statement_timeout=4321, pool_recycle=3600, max_overflow=20)

    engine = run_storage._engine
    assert engine.pool.size() == WEBSERVER_POOL_SIZE  # Dagster's own keeps one: every other call connects
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "4321ms"
