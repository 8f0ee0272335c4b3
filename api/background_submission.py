"""Handing a committed PENDING export or package to Dagster after the answer went out.

`POST /export` and `POST /packages` commit the row, answer 202, and only then submit the run (a burst
of POSTs never queues on Dagster's webserver). A submission that is lost (Dagster unreachable, the
gateway stopped first) leaves the row PENDING without a run: `export_reconciler_sensor` submits it after
its grace period, whatever its kind.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
from fastapi import BackgroundTasks, Request

from api.launcher import RunLauncher
from api.services.exports import CreateResult, submit_export
from export_engine.core.export_spec import ExportSpec
from export_engine.core.package_spec import PackageSpec

# Runs handed to Dagster's webserver at once; the others wait here as coroutines, holding no thread
# of the pool that serves requests.
SUBMISSIONS = anyio.CapacityLimiter(4)


async def submit_in_background(
    state: Any,
    launcher: RunLauncher,
    reference_id: str,
    spec: ExportSpec | PackageSpec,
    committed_at: float | None = None,
) -> None:
    """A background task of the creating POST (`state` is the app's: its `sessions`); `committed_at` as
    for `submit_export`."""
    submit = partial(
        submit_export,
        sessions=state.sessions,
        launcher=launcher,
        reference_id=reference_id,
        spec=spec,
        committed_at=committed_at,
    )
    await anyio.to_thread.run_sync(submit, limiter=SUBMISSIONS)


def submit_after_answer(
    background: BackgroundTasks, request: Request, launcher: RunLauncher, result: CreateResult
) -> None:
    """Schedule the run of a newly created row (nothing for a reuse or an attach) after the answer."""
    if result.to_submit is not None:
        background.add_task(
            submit_in_background,
            request.app.state,
            launcher,
            result.export.reference_id,
            result.to_submit,
            result.committed_at,
        )


__all__ = ["SUBMISSIONS", "submit_after_answer", "submit_in_background"]
