"""Hands exports to Dagster through its GraphQL API (plain HTTP: the gateway imports no Dagster).

At most one run per export: a submission that may not be the first finds the earlier run by its
`reference_id` tag before launching (one GraphQL call more; the gateway's own first submission of an
export it has just committed skips it, see `submit_export`).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import httpx

from export_engine.core.export_spec import ExportSpec
from export_engine.core.package_spec import PackageSpec
from export_engine.runs.submission import job_name_for, run_config_for, run_tags_with_deadline

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
_LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""
_TERMINATE_RUN = """
mutation TerminateRun($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on TerminateRunFailure { message }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""


class LaunchError(Exception):
    """Dagster could not be reached or refused the run; the export stays PENDING for the reconciler."""


class RunLauncher(Protocol):
    def submit(
        self, reference_id: str, spec: ExportSpec | PackageSpec, *, look_first: bool = True
    ) -> str: ...

    def terminate(self, run_id: str) -> None: ...


class DagsterRunLauncher:
    """Submits `export_job` runs to the Dagster webserver's GraphQL endpoint."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_seconds: float,
        max_runtime_seconds: int,
        location_name: str = "export_engine",
    ) -> None:
        self._url = f"http://{host}:{port}/graphql"
        self._http = httpx.Client(timeout=max(timeout_seconds, 1))  # thread-safe, pooled
        self._location_name = location_name
        self._max_runtime_seconds = max_runtime_seconds

    def _execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(self._url, json={"query": query, "variables": variables})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LaunchError(f"Dagster is unreachable: {exc}") from exc
        if body.get("errors"):
            raise LaunchError(f"Dagster refused the request: {body['errors'][0].get('message')}")
        return body["data"]

    def find_run(self, reference_id: str) -> str | None:
        runs = self._execute(_RUNS_BY_TAG, {"key": "reference_id", "value": reference_id})["runsOrError"]
        if runs["__typename"] != "Runs":
            raise LaunchError(f"Dagster could not list runs: {runs.get('message', runs['__typename'])}")
        return runs["results"][0]["runId"] if runs["results"] else None

    def submit(self, reference_id: str, spec: ExportSpec | PackageSpec, *, look_first: bool = True) -> str:
        """Launch the export's run; with `look_first`, answer the run already tagged with it instead."""
        if look_first and (existing := self.find_run(reference_id)):
            return existing
        tags = run_tags_with_deadline(reference_id, spec, self._max_runtime_seconds)
        params = {
            "selector": {
                "repositoryLocationName": self._location_name,
                "repositoryName": "__repository__",
                "jobName": job_name_for(spec.kind),
            },
            "runConfigData": run_config_for(reference_id, spec.kind),
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        result = self._execute(_LAUNCH_RUN, {"executionParams": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise LaunchError(
                f"Dagster did not launch the run: {result.get('message', result['__typename'])}"
            )
        return result["run"]["runId"]

    def terminate(self, run_id: str) -> None:
        """Ask Dagster to stop the run; the op aborts its upload when interrupted."""
        result = self._execute(_TERMINATE_RUN, {"runId": run_id})["terminateRun"]
        if result["__typename"] != "TerminateRunSuccess":
            raise LaunchError(
                f"could not terminate run {run_id}: {result.get('message', result['__typename'])}"
            )
