"""The Celery app that run workers serve: each Dagster run is one task in a long-lived worker process.

Start a worker node (any number of them, on any hosts that reach the broker and the databases):

    DAGSTER_HOME=... celery -A export_engine.run_workers worker -Q dagster -c 2 -n exports-a@%h \
        --prefetch-multiplier=1 --without-gossip --without-mingle

The app is the run launcher's own (`dagster_celery.launcher.CeleryRunLauncher`, configured in the
instance's dagster.yaml), so the daemon and the workers cannot disagree on the broker, the result
backend or the queue. The worker's parent process imports the code location before it forks its pool,
so every run is a task in a process that already holds Dagster and the project: no interpreter start,
no imports, per export.
"""

from __future__ import annotations

from celery import Celery
from dagster import DagsterInstance
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task


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
