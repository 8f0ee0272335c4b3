"""End-to-end fixtures: a client for the gateway running under uvicorn, with real Dagster runs behind it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg2
import pytest

from api.security import issue_token
from devstack.stack import LocalStack
from export_engine.settings import DEV_JWT_SECRET
from export_engine_tests import faults

TERMINAL = {"COMPLETED", "FAILED", "CANCELED", "SUPERSEDED", "EXPIRED"}


class ApiClient:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=stack.api_url, timeout=60)

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(user, secret=DEV_JWT_SECRET)}"}

    def post(self, user: str, **body: Any) -> httpx.Response:
        return self.http.post("/export", json=body, headers=self.headers(user))

    def get(self, user: str, reference_id: str) -> httpx.Response:
        return self.http.get(f"/export/{reference_id}", headers=self.headers(user))

    def wait(self, user: str, reference_id: str, timeout: float = 240) -> dict[str, Any]:
        """Poll until the export leaves PENDING/RUNNING (a generous bound against a hung run, not a perf check)."""
        deadline = time.monotonic() + timeout
        while True:
            export = self.get(user, reference_id).json()
            if export["status"] in TERMINAL:
                return export
            if time.monotonic() > deadline:
                raise AssertionError(f"export {reference_id} still {export['status']} after {timeout}s")
            time.sleep(0.5)

    def wait_streaming(self, user: str, reference_id: str, timeout: float = 180) -> dict[str, Any]:
        """Poll until the export is RUNNING and its run worker has written rows."""
        deadline = time.monotonic() + timeout
        while True:
            export = self.get(user, reference_id).json()
            if export["status"] == "RUNNING" and export.get("rows_written", 0) > 0:
                return export
            if time.monotonic() > deadline:
                raise AssertionError(f"export {reference_id} not streaming after {timeout}s: {export}")
            time.sleep(0.5)

    @contextmanager
    def streaming_slow_export(self, *, date_from: str, date_to: str) -> Iterator[tuple[str, str]]:
        """Owner USD's export of the `slow` view, caught while its run streams rows: (reference id, run
        id). The view stays slow until the block ends, so nothing inside it races a fast finish."""
        admin = self.stack.env["SOURCE_ADMIN_URL"]
        faults.arm(admin, "slow", seconds=300)
        try:
            created = self.post("USD", table_name="slow", date_from=date_from, date_to=date_to)
            reference_id = created.json()["reference_id"]
            self.wait_streaming("USD", reference_id)
            yield reference_id, self.export_rows(reference_id=reference_id)[0][2]
        finally:
            faults.disarm(admin, "slow")

    def wait_run_ended(self, reference_id: str, run_id: str, timeout: float = 180) -> dict[str, Any]:
        """Poll Dagster until the run is in a final state; returns the run."""
        deadline = time.monotonic() + timeout
        while True:
            (run,) = [r for r in self.dagster_runs("reference_id", reference_id) if r["runId"] == run_id]
            if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {run['status']} after {timeout}s")
            time.sleep(0.5)

    def export_rows(self, **where: Any) -> list[tuple]:
        """Rows of the export DB, for asserting what was (not) written."""
        clauses = " AND ".join(f"{k} = %s" for k in where) or "TRUE"
        with psycopg2.connect(self.stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT reference_id, status, dagster_run_id, reused_from_ref FROM exports WHERE {clauses}",
                list(where.values()),
            )
            return cur.fetchall()

    def drain(self, timeout: float = 240) -> None:
        """Wait until no export is PENDING or RUNNING (e.g. one the orphan sensor picked up from another test)."""
        deadline = time.monotonic() + timeout
        while any(status in ("PENDING", "RUNNING") for _, status, _, _ in self.export_rows()):
            if time.monotonic() > deadline:
                raise AssertionError(f"exports still active after {timeout}s")
            time.sleep(0.5)

    def export_count(self) -> int:
        with psycopg2.connect(self.stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM exports")
            return cur.fetchone()[0]

    def dagster_runs(self, tag_key: str, tag_value: str) -> list[dict[str, Any]]:
        query = """query($k: String!, $v: String!) { runsOrError(filter: {tags: [{key: $k, value: $v}]}) {
                     ... on Runs { results { runId status } } } }"""
        response = httpx.post(
            f"{self.stack.dagster_url}/graphql",
            json={"query": query, "variables": {"k": tag_key, "v": tag_value}},
            timeout=30,
        )
        return response.json()["data"]["runsOrError"]["results"]


@pytest.fixture(scope="session")
def api(running_stack: LocalStack) -> Iterator[ApiClient]:
    client = ApiClient(running_stack)
    yield client
    client.http.close()
