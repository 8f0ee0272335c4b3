"""Hands exports to Dagster through its GraphQL API, at most one run per export."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from export_engine.request import ExportSpec
from export_engine.submission import EXPORT_JOB_NAME, run_config_for, run_tags_with_deadline

log = logging.getLogger(__name__)

_RUNS_BY_TAG = """
query RunsByTag($key: String!, $value: String!) {
  runsOrError(filter: {tags: [{key: $key, value: $value}]}, limit: 1) {
    __typename
    ... on Runs { results { runId } }
    ... on PythonError { message }
  }
}
"""


class LaunchError(Exception):
    """Dagster could not be reached or refused the run; the export stays PENDING for the sensor."""


class RunLauncher(Protocol):
    def submit(self, reference_id: str, spec: ExportSpec) -> str: ...

    def terminate(self, run_id: str) -> None: ...


class DagsterRunLauncher:
    """Submits `export_job` runs; a retried submission finds the earlier run by its `reference_id` tag."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_seconds: float,
        max_runtime_seconds: int,
        location_name: str = "export_engine",
    ) -> None:
        self._host, self._port, self._timeout = host, port, int(max(timeout_seconds, 1))
        self._local = threading.local()
        self._location_name = location_name
        self._max_runtime_seconds = max_runtime_seconds

    @property
    def _client(self) -> DagsterGraphQLClient:
        """One client per thread: the gql client under it is not safe to share between threads."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = DagsterGraphQLClient(
                self._host, port_number=self._port, timeout=self._timeout
            )
        return client

    def find_run(self, reference_id: str) -> str | None:
        result = self._client._execute(_RUNS_BY_TAG, {"key": "reference_id", "value": reference_id})
        runs = result["runsOrError"]
        if runs["__typename"] != "Runs":
            raise LaunchError(f"Dagster could not list runs: {runs.get('message', runs['__typename'])}")
        return runs["results"][0]["runId"] if runs["results"] else None

    def submit(self, reference_id: str, spec: ExportSpec) -> str:
        try:
            existing = self.find_run(reference_id)
            if existing:
                return existing
            return self._client.submit_job_execution(
                EXPORT_JOB_NAME,
                repository_location_name=self._location_name,
                repository_name="__repository__",
                run_config=run_config_for(reference_id),
                tags=run_tags_with_deadline(reference_id, spec, self._max_runtime_seconds),
            )
        except LaunchError:
            raise
        except (
            DagsterGraphQLClientError,
            OSError,
            Exception,
        ) as exc:  # requests/gql errors vary by transport
            raise LaunchError(f"could not submit the run to Dagster: {exc}") from exc

    def terminate(self, run_id: str) -> None:
        """Ask Dagster to stop the run; the op aborts its upload when interrupted."""
        try:
            self._client.terminate_run(run_id)
        except Exception as exc:
            raise LaunchError(f"could not terminate run {run_id}: {exc}") from exc
