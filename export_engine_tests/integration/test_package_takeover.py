"""A package run that loses its export to another run must leave that run's upload alone.

Review 2026-12-07 N9: when run A's beat lost (the reconciler had given the package to run B), A's
`on_stop` aborted every upload under the package's prefix, B's live upload included, so B failed with
`NoSuchUpload` and spent a retry (its last one: the package ended FAILED). Now A aborts only its own key.
The package op runs in-process with its real retry policy against the real export DB and S3 server.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from export_engine.core.package_spec import PackageSpec
from export_engine.db.models import Export
from export_engine.db.session import session_factory
from export_engine.lifecycle import transitions
from export_engine.runs.package_job import package_job
from export_engine.runs.resources import ExportDbResource, SourceDatabaseResource
from export_engine.runs.submission import run_config_for
from export_engine_tests import faults

pytestmark = pytest.mark.integration


@pytest.fixture
def slow_source(stack) -> Iterator[str]:
    """`slow` streams a row every ~2 ms: run A is still streaming when it loses the package."""
    admin = stack.env["SOURCE_ADMIN_URL"]
    faults.arm(admin, "slow", seconds=600)
    yield admin
    faults.disarm(admin, "slow")


def test_a_package_run_that_lost_its_export_leaves_the_new_holders_upload_alone(
    settings, storage, op_settings, slow_source
):
    spec = PackageSpec(
        owner="USD", datasets=("slow",), date_from=date(2019, 1, 1), date_to=date(2020, 12, 31)
    )
    ref = str(uuid.uuid4())
    sessions = session_factory(settings.database_url)
    with sessions.begin() as session:
        session.add(
            Export(
                reference_id=ref,
                kind="package",
                dedup_key=spec.dedup_key,
                owner=spec.owner,
                table_name=spec.table_name,
                date_from=spec.date_from,
                date_to=spec.date_to,
                format=spec.format,
                params=spec.canonical(),
            )
        )
    outcome: dict[str, object] = {}
    resources = {
        "export_db": ExportDbResource.from_settings(settings),
        "source_db": SourceDatabaseResource.from_settings(settings),
        "storage": storage,
    }
    run_a = threading.Thread(
        target=lambda: outcome.update(
            result=package_job.execute_in_process(
                run_config=run_config_for(ref, "package"), resources=resources, raise_on_error=False
            )
        ),
        daemon=True,
    )
    run_a.start()
    row = _wait_streaming(sessions, ref, run_a)

    # The reconciler gave the package to run B (A looked dead), and B started its upload.
    with sessions.begin() as session:
        claim = transitions.start(
            session, ref, "run-b", stale_after=timedelta(hours=1), finished_holder=row.dagster_run_id
        )
        assert claim is not None
    key_b = spec.object_key(ref, "run-b")
    upload_b = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key_b)["UploadId"]
    try:
        run_a.join(120)  # A's next beat loses: it stops
        assert not run_a.is_alive(), "run A did not stop after losing its package"

        assert not outcome["result"].success  # type: ignore[attr-defined]
        pending = storage.pending_uploads(prefix=spec.object_prefix(ref))
        assert [(u["Key"], u["UploadId"]) for u in pending] == [(key_b, upload_b)]  # A's own is gone
    finally:
        storage.abort_pending_uploads(key_b)
    with sessions() as session:
        after = session.get(Export, ref)
        assert (after.status, after.dagster_run_id) == ("RUNNING", "run-b")  # A never touched B's row


def _wait_streaming(sessions, ref: str, run: threading.Thread, timeout: float = 120) -> Export:
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as session:
            row = session.get(Export, ref)
        if row.status == "RUNNING" and row.rows_written > 0:
            return row
        assert run.is_alive(), f"the run ended before streaming: {row.status} {row.error}"
        assert time.monotonic() < deadline, "the package never started streaming"
        time.sleep(0.2)
