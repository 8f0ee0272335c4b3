"""Dagster's storages survive a restart of the PostgreSQL that holds them, with no process restarted.

The daemon, the webserver and every run worker's pool processes keep their storage connections for
their whole life (export_engine/runs/dagster_storage.py, and the webserver's own pool). A PostgreSQL restart
(a deploy, a failover) closes every one of those connections. This test gives the Dagster DB its own
real PostgreSQL server, so that server can be restarted without touching the session's stack: a small
second stack (daemon, webserver, gateway, one worker node) shares the session's source DB, S3 and Redis,
on its own export DB and Celery queue. An export completes, the server restarts (fast shutdown: every
client connection is closed, nothing listens for a moment), and a second export still completes with
the same processes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg2
import pytest

from devstack.postgres import EmbeddedPostgres
from devstack.processes import free_port
from devstack.stack import LocalStack, Ports
from export_engine_tests.e2e.conftest import ApiClient

pytestmark = pytest.mark.e2e

USER = "demo-user-21"
QUEUE = "dagster-pg-restart"
_RUN_TAGS = """query($runId: ID!) { runOrError(runId: $runId) { ... on Run { tags { key value } } } }"""


class RestartableStack:
    def __init__(self, stack: LocalStack, dagster_pg: EmbeddedPostgres, home: Path) -> None:
        self.dagster_pg = dagster_pg
        env = {
            k: v
            for k, v in stack.env.items()
            if not k.startswith(("DAGSTER_", "TELEGRAM_")) and k not in ("API_PORT", "CELERY_QUEUE")
        }
        env["DAGSTER_PG_URL"] = dagster_pg.ensure_database("dagster")
        assert stack.postgres is not None
        env["DATABASE_URL"] = stack.postgres.ensure_database("exports_pg_restart")
        env["CELERY_QUEUE"] = QUEUE  # the session's workers never take these runs, nor ours theirs
        env["CELERY_WORKER_CONCURRENCY"] = "1"
        env["DAGSTER_DISABLE_TELEMETRY"] = "1"
        self.local = LocalStack(home, Ports.free(), environ=env)

    def start(self) -> None:
        self.local.start_storage()  # all three DB URLs are given: no PostgreSQL, S3 or Redis is started
        self.local.start_services(worker_nodes=1)

    def restart_dagster_pg(self) -> None:
        self.dagster_pg.stop()  # SIGINT: fast shutdown, every client connection is terminated
        time.sleep(2)  # nothing listens for a moment: the daemon's loops run into the outage
        self.dagster_pg.start()

    def pids(self) -> dict[str, set[int]]:
        """Every process of the stack, and the worker node's pool processes (which hold the runs' storages)."""
        tree: dict[str, set[int]] = {}
        for process in self.local.processes:
            tree[process.name] = {process.process.pid}
        for worker in self.local.workers:
            tree[worker.name] |= {c.pid for c in psutil.Process(worker.process.pid).children()}
        return tree

    def stop(self) -> None:
        self.local.stop()
        self.dagster_pg.stop()


@pytest.fixture(scope="module")
def restartable(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableStack]:
    home = tmp_path_factory.mktemp("dagster-pg-restart")
    dagster_pg = EmbeddedPostgres(
        home / "dagster-pgdata", free_port(), log_path=home / "logs" / "postgres-dagster.log"
    ).start()
    restartable = RestartableStack(stack, dagster_pg, home)
    try:
        restartable.start()
        yield restartable
    finally:
        restartable.stop()


def _export_completes(api: ApiClient, date_from: str, date_to: str) -> str:
    response = api.post(USER, table_name="transactions", date_from=date_from, date_to=date_to)
    assert response.status_code == 202, response.text
    reference_id = response.json()["reference_id"]
    export = api.wait(USER, reference_id)
    assert export["status"] == "COMPLETED", export
    assert export["row_count"] == _owner_rows(api, date_from, date_to) > 0
    ((_, _, run_id, _),) = api.export_rows(reference_id=reference_id)
    assert api.wait_run_ended(reference_id, run_id)["status"] == "SUCCESS"
    # Launched by the gateway through the webserver, not later by the reconciler sensor after a failed
    # launch (which would still complete the export, and hide a webserver that lost its storage).
    assert "dagster/sensor_name" not in _run_tags(api, run_id)
    return run_id


def _owner_rows(api: ApiClient, date_from: str, date_to: str) -> int:
    """The expectation comes from the source DB, not from where the seed happens to put rows."""
    with psycopg2.connect(api.stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM transactions WHERE user_id = %s AND txn_date BETWEEN %s AND %s",
            (USER, date_from, date_to),
        )
        return cur.fetchone()[0]


def _run_tags(api: ApiClient, run_id: str) -> dict[str, str]:
    response = httpx.post(
        f"{api.stack.dagster_url}/graphql",
        json={"query": _RUN_TAGS, "variables": {"runId": run_id}},
        timeout=30,
    )
    return {t["key"]: t["value"] for t in response.json()["data"]["runOrError"]["tags"]}


def test_exports_complete_after_the_dagster_database_restarts(restartable: RestartableStack):
    api = ApiClient(restartable.local)
    try:
        first_run = _export_completes(api, "2024-01-01", "2024-01-31")
        before = restartable.pids()

        restartable.restart_dagster_pg()

        second_run = _export_completes(api, "2024-02-01", "2024-02-29")
        assert second_run != first_run
        after = restartable.pids()
        # The same processes, pool processes included: nothing was restarted to get there.
        assert after == before
        assert all(p.alive() for p in restartable.local.processes)
    finally:
        api.http.close()
