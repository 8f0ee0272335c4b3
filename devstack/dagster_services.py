"""The Dagster half of the dev stack: the instance config, the code server, the daemon's health, workers.

`make run` and the tests run the same processes compose and Kubernetes run: one long-lived code
server, the daemon and the webserver reading it over gRPC, and Celery worker nodes executing the runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from devstack.processes import PROJECT_ROOT

LOCATION_NAME = "export_engine"  # the code location, as every workspace file and the gateway name it
BIN = Path(sys.executable).parent


def write_instance_config(
    path: Path,
    *,
    launcher: str,
    max_concurrent_runs: int,
    owner_run_limit: int,
    queue: dict[str, Any] | None = None,
) -> None:
    """The shipped dagster.yaml with this stack's numbers (Dagster reads no env var for a tag limit);
    `queue` overrides run-coordinator settings (the benchmark compares queue settings with it)."""
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    coordinator = config["run_coordinator"]["config"]
    coordinator["max_concurrent_runs"] = max_concurrent_runs
    coordinator.update(queue or {})
    for limit in coordinator.get("tag_concurrency_limits", []):
        if limit["key"] == "owner":
            limit["limit"] = owner_run_limit
    if launcher == "default":
        config["run_launcher"] = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def code_server_argv(port: int) -> list[str]:
    """With `workspace.yaml`'s `python_module`, the webserver and the daemon each spawn their own code
    server, and the daemon replaces its own every 60 s (Dagster's `RELOAD_WORKSPACE_INTERVAL`): a fresh
    interpreter importing Dagster and the project each minute, 6.6 of the daemon's 6.6 CPU-s per idle
    minute (measured). One long-lived server, as in compose, avoids that."""
    return [
        str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1",
        "-p", str(port), "-m", "export_engine.definitions", "--location-name", LOCATION_NAME,
    ]  # fmt: skip


def grpc_workspace(dagster_home: Path, port: int) -> Path:
    """The workspace file that points the webserver and the daemon at the running code server."""
    workspace = dagster_home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
        f"      port: {port}\n      location_name: {LOCATION_NAME}\n"
    )
    return workspace


def worker_argv(node: str, env: dict[str, str]) -> list[str]:
    """A Celery worker node (`node@host`): its parent imports the code once, its pool runs the runs."""
    return [
        str(BIN / "celery"), "-A", "export_engine.run_workers", "worker",
        "-Q", env["CELERY_QUEUE"], "-n", f"{node}@%h",
        "-c", env.get("CELERY_WORKER_CONCURRENCY", "2"),
        "--prefetch-multiplier=1", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    ]  # fmt: skip


def dagster_pg_parts(url: str) -> dict[str, str]:
    """dagster.yaml takes the Dagster DB as parts (so it can pin the psycopg2 scheme)."""
    parts = urlsplit(url)
    return {
        "DAGSTER_PG_HOST": parts.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_USER": parts.username or "postgres",
        "DAGSTER_PG_PASSWORD": parts.password or "",
        "DAGSTER_PG_DB": parts.path.lstrip("/") or "dagster",
    }


_DAEMON_HEALTH = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"


def code_server_ready(port: int) -> bool:
    """True once the code server answers with the code loaded (its port opens before that)."""
    import socket

    from dagster._grpc.client import DagsterGrpcClient

    with socket.socket() as probe:  # a closed port first: gRPC would log every refused attempt
        if probe.connect_ex(("127.0.0.1", port)) != 0:
            return False
    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    return client.health_check_query() == "SERVING" and bool(client.list_repositories())


def daemon_healthy(dagster_url: str) -> bool:
    """True once every required daemon (sensors, run queue, monitoring) has sent a healthy heartbeat."""
    response = httpx.post(f"{dagster_url}/graphql", json={"query": _DAEMON_HEALTH}, timeout=5)
    statuses = response.json()["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
    required = [s for s in statuses if s["required"]]
    return bool(required) and all(s["healthy"] for s in required)
