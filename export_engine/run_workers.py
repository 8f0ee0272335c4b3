"""The Celery app that run workers serve: each Dagster run is one task in a long-lived worker process.

Start a worker node (any number of them, on any hosts that reach the broker and the databases):

    DAGSTER_HOME=... celery -A export_engine.run_workers worker -Q dagster -c 2 -n exports-a@%h \
        --prefetch-multiplier=1 --without-gossip --without-mingle

The app is the run launcher's own (`dagster_celery.launcher.CeleryRunLauncher`, configured in the
instance's dagster.yaml), so the daemon and the workers cannot disagree on the broker, the result
backend or the queue. The worker's parent process imports the code location before it forks its pool,
so every run is a task in a process that already holds Dagster and the project: no interpreter start,
no imports, per export.

The `execute_job` task is dagster-celery's, with one difference: dagster-celery opens a new
`DagsterInstance` per task (loading dagster.yaml, building the storages and inspecting their tables,
a Celery app for the launcher) and closes it after the run. Here each pool process opens its instance
once, at its first run, and keeps it, with its pooled connections (`export_engine.runs.dagster_storage`).
The run itself goes through the same Dagster entry point (`_execute_run_command_body`), so run
storage, events, retries, monitoring and termination are unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery
from dagster import DagsterInstance
from dagster._cli.api import _execute_run_command_body
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import unpack_value
from dagster_celery.config import TASK_EXECUTE_JOB_NAME
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tasks import create_resume_job_task

_instance: DagsterInstance | None = None
_instance_lock = threading.Lock()


def process_instance() -> DagsterInstance:
    """This pool process's `DagsterInstance`, opened at its first run (after the fork: nothing shared)."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = DagsterInstance.get()
        return _instance


def _send_to_null(_event: Any) -> None:
    pass


def create_execute_job_task(app: Celery) -> Any:
    """dagster-celery's `execute_job` task (same name, same arguments, started state tracked for the
    run monitor), run with this process's long-lived instance."""

    @app.task(bind=True, name=TASK_EXECUTE_JOB_NAME, track_started=True)
    def execute_job(_self: Any, execute_job_args_packed: Any) -> int:
        args = unpack_value(val=execute_job_args_packed, as_type=ExecuteRunArgs)
        exit_on_failure = args.set_exit_code_on_failure
        return _execute_run_command_body(
            instance=process_instance(),
            run_id=args.run_id,
            write_stream_fn=_send_to_null,
            set_exit_code_on_failure=exit_on_failure if exit_on_failure is not None else True,
        )

    return execute_job


def make_worker_app() -> Celery:
    with DagsterInstance.get() as instance:  # closed before the pool forks: no connection is shared
        launcher = instance.run_launcher
        if not isinstance(launcher, CeleryRunLauncher):
            raise RuntimeError(
                f"DAGSTER_HOME's dagster.yaml runs {type(launcher).__name__}, not CeleryRunLauncher: "
                "runs would never reach this worker"
            )
        app = launcher.celery
    create_execute_job_task(app)
    create_resume_job_task(app)
    return app


app = make_worker_app()

# Imported once, in the parent, before the pool forks (copy-on-write); resources are still built per
# run from the environment (definitions.py), never here.
import export_engine.definitions  # noqa: E402, F401
