"""Runs as tasks in long-lived Celery workers: real worker nodes, a real Redis broker, real faults.

The stack runs two worker nodes (`exports-1@host`, `exports-2@host`) on one queue: two hosts in
miniature. Killing a pool process is covered by test_reliability's kill -9 of the run worker (the pid
in the run's event log is the pool process that executes it).
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from export_engine.runs.resources import S3StorageResource
from export_engine_tests import faults

pytestmark = pytest.mark.e2e

_RUN_TAGS = (
    """query($runId: ID!) { runOrError(runId: $runId) { ... on Run { status tags { key value } } } }"""
)
_RUNS = """query($k: String!, $v: String!) { runsOrError(filter: {tags: [{key: $k, value: $v}]}) {
  ... on Runs { results { runId status } } } }"""


def _task_id(api, run_id: str) -> str | None:
    response = httpx.post(
        f"{api.stack.dagster_url}/graphql",
        json={"query": _RUN_TAGS, "variables": {"runId": run_id}},
        timeout=30,
    )
    tags = {t["key"]: t["value"] for t in response.json()["data"]["runOrError"]["tags"]}
    return tags.get("dagster-celery/task_id")


def _node_that_ran(api, task_id: str):
    """The worker node whose log says it received the task."""
    for worker in api.stack.workers:
        if f"[{task_id}] received" in worker.log_path.read_text(errors="replace"):
            return worker
    return None


def _wait_for(check, what: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.5)
    return value


def _assert_one_object(settings, prefix: str, reference_id: str, size: int) -> None:
    storage = S3StorageResource.from_settings(settings)
    assert storage.pending_uploads(prefix=prefix) == []
    listed = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=f"{prefix}{reference_id}")
    assert [o["Size"] for o in listed["Contents"]] == [size]


def test_a_worker_node_stopped_for_good_has_its_run_retried_on_the_other_node(api, settings):
    stack = api.stack
    with api.streaming_slow_export(date_from="2019-02-01", date_to="2024-12-31") as (reference_id, first_run):
        node = _node_that_ran(api, _task_id(api, first_run))
        assert node is not None, "no worker node received the run's task"
        os.killpg(node.process.pid, signal.SIGKILL)  # the host is gone: parent and pool, no goodbye
        stack.stop_worker(node)
    try:
        seen = set()
        deadline = time.monotonic() + 240
        while (export := api.get("USD", reference_id).json())["status"] in ("PENDING", "RUNNING"):
            seen.add(export["status"])
            assert time.monotonic() < deadline, export
            time.sleep(0.5)
        assert export["status"] == "COMPLETED", export
        assert "FAILED" not in seen
        runs = api.dagster_runs("reference_id", reference_id)
        assert len(runs) == 2
        final_run = api.export_rows(reference_id=reference_id)[0][2]
        assert final_run != first_run
        survivor = _node_that_ran(api, _task_id(api, final_run))
        assert survivor is not None and survivor is not node
        _assert_one_object(
            settings, "exports/slow/2019-02-01_2024-12-31/", reference_id, export["file_size_bytes"]
        )
    finally:
        stack.start_worker(f"exports-{len(stack.workers) + 2}")  # back to two nodes for later tests


def test_broker_down_post_still_accepted_and_the_run_starts_when_it_is_back(api):
    stack = api.stack
    api.drain()
    stack.stop_broker()
    try:
        created = api.post(
            "demo-user-31", table_name="transactions", date_from="2019-03-01", date_to="2019-03-31"
        )
        assert created.status_code == 202, created.text
        assert created.json()["status"] == "PENDING"
        reference_id = created.json()["reference_id"]
        time.sleep(5)  # the daemon dequeues the run and keeps retrying the publish
        assert api.get("demo-user-31", reference_id).json()["status"] == "PENDING"
    finally:
        stack.start_broker()
    export = api.wait("demo-user-31", reference_id)
    assert export["status"] == "COMPLETED", export
    assert export["row_count"] > 0
    assert len(api.dagster_runs("reference_id", reference_id)) == 1  # nothing lost, nothing doubled


def test_one_owner_holds_at_most_two_run_slots_and_another_owner_still_gets_through(api):
    """`tag_concurrency_limits` on `owner` (applyLimitPerUniqueValue, 2): the third run stays QUEUED."""
    admin = api.stack.env["SOURCE_ADMIN_URL"]
    api.drain()
    faults.arm(admin, "slow", seconds=300)
    refs = []
    try:
        for month in ("01", "02", "03"):
            created = api.post("USD", table_name="slow", date_from=f"2016-{month}-01", date_to="2024-12-31")
            assert created.status_code == 202, created.text
            refs.append(created.json()["reference_id"])

        def states():
            response = httpx.post(
                f"{api.stack.dagster_url}/graphql",
                json={"query": _RUNS, "variables": {"k": "owner", "v": "USD"}},
                timeout=30,
            )
            runs = response.json()["data"]["runsOrError"]["results"]
            return [r["status"] for r in runs if r["status"] in ("QUEUED", "STARTING", "STARTED")]

        _wait_for(lambda: sorted(states()).count("STARTED") == 2, "two USD runs started")
        for _ in range(6):  # over several dequeue ticks, never a third
            assert sorted(states()) == ["QUEUED", "STARTED", "STARTED"]
            time.sleep(1)

        other = api.post(
            "demo-user-32", table_name="transactions", date_from="2019-04-01", date_to="2019-04-30"
        )
        export = api.wait("demo-user-32", other.json()["reference_id"])
        assert export["status"] == "COMPLETED", export
    finally:
        for reference_id in refs:
            api.http.delete(f"/export/{reference_id}", headers=api.headers("USD"))
        faults.disarm(admin, "slow")
    api.drain()
