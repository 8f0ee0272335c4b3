"""The one failure policy of `export_op` and `package_op` (`export_engine.runs.op_lifecycle`), run for both.

Each job runs in-process with its real RetryPolicy against the real export DB, S3 and source (the
suite's fault datasets): a permanent error fails the row at once, a transient one is retried and then
fails it with the same reason; the Dagster failure carries the same metadata for either kind.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from export_engine.core.export_spec import ExportSpec
from export_engine.core.package_spec import PackageSpec
from export_engine.db.models import Export
from export_engine.db.session import session_factory
from export_engine.lifecycle import creation
from export_engine.runs.export_job import MAX_RETRIES, export_job
from export_engine.runs.package_job import package_job
from export_engine.runs.resources import ExportDbResource, S3StorageResource, SourceDatabaseResource
from export_engine.runs.submission import run_config_for
from export_engine_tests import faults

pytestmark = pytest.mark.integration

RANGE = (date(2020, 1, 1), date(2020, 3, 31))


def _spec(kind: str, dataset: str) -> ExportSpec | PackageSpec:
    if kind == "export":
        return ExportSpec(dataset, *RANGE, owner="demo-user-23")
    return PackageSpec(
        owner="demo-user-23", datasets=("accounts", dataset), date_from=RANGE[0], date_to=RANGE[1]
    )


def _run(settings, spec: ExportSpec | PackageSpec) -> tuple[dg.ExecuteInProcessResult, Export]:
    sessions = session_factory(settings.database_url)
    with sessions.begin() as session:
        reference_id = creation.create_pending(session, spec).reference_id
    job = export_job if spec.kind == "export" else package_job
    result = job.execute_in_process(
        run_config=run_config_for(reference_id, spec.kind),
        resources={
            "export_db": ExportDbResource.from_settings(settings),
            "source_db": SourceDatabaseResource.from_settings(settings),
            "storage": S3StorageResource.from_settings(settings),
        },
        raise_on_error=False,
    )
    with sessions() as session:
        row = session.get(Export, reference_id)
        assert row is not None
        return result, row


def _failure(result: dg.ExecuteInProcessResult) -> tuple[str | None, dict]:
    """The description and metadata of the step's last failure, as the Dagster UI shows them."""
    failure = result.get_step_failure_events()[-1].step_failure_data.user_failure_data
    assert failure is not None
    return failure.description, {k: v.value for k, v in failure.metadata.items()}


@pytest.mark.parametrize("kind", ["export", "package"])
def test_a_permanent_error_fails_the_row_at_once(settings, storage, op_settings, kind):
    spec = _spec(kind, "vanished")
    result, row = _run(settings, spec)

    assert not result.success
    assert row.status == "FAILED"
    assert row.error == 'UndefinedTable: relation "vanished_transactions" does not exist'
    assert row.attempts == 1
    description, metadata = _failure(result)
    assert description == row.error
    assert metadata == {"reference_id": row.reference_id, "permanent": True, "attempt": 1}
    assert storage.pending_uploads(prefix=spec.object_prefix(row.reference_id)) == []


@pytest.mark.parametrize("kind", ["export", "package"])
def test_a_transient_error_is_retried_then_fails_the_row_with_its_reason(
    stack, settings, storage, op_settings, kind
):
    spec = _spec(kind, "flaky")
    faults.arm(stack.env["SOURCE_ADMIN_URL"], "flaky", seconds=600)  # serialization_failure until disarmed
    try:
        result, row = _run(settings, spec)
    finally:
        faults.disarm(stack.env["SOURCE_ADMIN_URL"], "flaky")

    assert not result.success
    assert row.status == "FAILED"
    assert row.error.startswith("SerializationFailure: injected transient failure (flaky)"), row.error
    assert row.attempts == MAX_RETRIES + 1
    description, metadata = _failure(result)
    assert description == row.error
    assert metadata == {"reference_id": row.reference_id, "permanent": False, "attempt": MAX_RETRIES + 1}
    assert storage.pending_uploads(prefix=spec.object_prefix(row.reference_id)) == []
