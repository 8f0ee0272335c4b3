"""Outages while an export streams: the S3 server or the source PostgreSQL goes away mid-stream.

The real servers stay up for the rest of the session; the op under test reaches them through a
`TcpProxy` that the test cuts (every connection reset, nothing listening) and restores. The op runs
in-process with its real RetryPolicy, against the real export DB, so the export row tells the story.
"""

from __future__ import annotations

import csv
import io
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import select

from export_engine.core.export_spec import ExportSpec
from export_engine.db.models import Export
from export_engine.db.session import session_factory
from export_engine.lifecycle.retention import abort_abandoned_uploads
from export_engine.runs.export_job import MAX_RETRIES, export_job
from export_engine.runs.resources import ExportDbResource, S3StorageResource, SourceDatabaseResource
from export_engine.runs.submission import run_config_for
from export_engine_tests import faults
from export_engine_tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


@pytest.fixture
def slow_source(stack) -> Iterator[str]:
    """`slow` streams a row every ~2 ms, so the test can cut a connection while rows are flowing."""
    admin = stack.env["SOURCE_ADMIN_URL"]
    faults.arm(admin, "slow", seconds=600)
    yield admin
    faults.disarm(admin, "slow")


class ExportInFlight:
    """One export row, PENDING, and `export_job` running it in a background thread."""

    def __init__(
        self,
        settings,
        *,
        source: SourceDatabaseResource,
        storage: S3StorageResource,
        export_db: ExportDbResource | None = None,
        params_overrides: dict | None = None,
    ) -> None:
        self.spec = ExportSpec("slow", date(2019, 1, 1), date(2020, 12, 31), owner="USD")
        self.reference_id = str(uuid.uuid4())
        self.prefix = self.spec.object_prefix(self.reference_id)
        self._storage = S3StorageResource.from_settings(settings)  # never behind the test's proxy
        self._sessions = session_factory(settings.database_url)
        with self._sessions.begin() as session:
            session.add(
                Export(
                    reference_id=self.reference_id,
                    dedup_key=self.spec.dedup_key,
                    owner=self.spec.owner,
                    table_name=self.spec.table_name,
                    date_from=self.spec.date_from,
                    date_to=self.spec.date_to,
                    format=self.spec.format,
                    params={**self.spec.canonical(), **(params_overrides or {})},
                )
            )
        self.result = None
        resources = {
            "export_db": export_db or ExportDbResource.from_settings(settings),
            "source_db": source,
            "storage": storage,
        }
        run_config = run_config_for(self.reference_id)
        self._thread = threading.Thread(
            target=self._run, args=(resources, run_config), name=f"export-{self.reference_id}", daemon=True
        )
        self._thread.start()

    def _run(self, resources, run_config) -> None:
        self.result = export_job.execute_in_process(
            run_config=run_config, resources=resources, raise_on_error=False
        )

    def objects(self) -> list[str]:
        """Every object of this export (one per run that completed an upload)."""
        return [o["Key"] for o in self._storage.objects(self.prefix)]

    def row(self) -> Export:
        with self._sessions() as session:
            return session.execute(
                select(Export).where(Export.reference_id == self.reference_id)
            ).scalar_one()

    def wait_streaming(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not (self.row().status == "RUNNING" and self.row().rows_written > 0):
            assert self._thread.is_alive(), f"the run ended before streaming: {self.row().error}"
            assert time.monotonic() < deadline, "the export never started streaming"
            time.sleep(0.2)

    def finish(self, timeout: float = 300) -> Export:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the run is still going"
        return self.row()


def _proxied_storage(settings, proxy: TcpProxy) -> S3StorageResource:
    return S3StorageResource.from_settings(
        settings.model_copy(update={"s3_endpoint_url": proxy.url_for(settings.s3_endpoint_url)})
    )


def _proxied_source(settings, proxy: TcpProxy) -> SourceDatabaseResource:
    return SourceDatabaseResource(dsn=proxy.url_for(settings.source_database_url))


def test_s3_down_mid_export_is_retried_then_failed_with_the_reason(
    settings, storage, op_settings, slow_source
):
    proxy = TcpProxy.in_front_of(settings.s3_endpoint_url)
    try:
        export = ExportInFlight(
            settings,
            source=SourceDatabaseResource.from_settings(settings),
            storage=_proxied_storage(settings, proxy),
        )
        export.wait_streaming()
        proxy.down()
        faults.disarm(slow_source, "slow")  # rows now rush in: the next part upload meets the outage
        row = export.finish()
    finally:
        proxy.close()

    assert not export.result.success
    assert row.status == "FAILED"
    assert "Could not connect to the endpoint URL" in row.error, row.error
    assert row.attempts == MAX_RETRIES + 1
    # S3 is back: nothing was completed, and the upload the run could not abort is swept away.
    assert export.objects() == []
    abort_abandoned_uploads(session_factory(settings.database_url), storage)
    assert storage.pending_uploads(prefix=export.prefix) == []


def test_s3_blip_mid_export_still_completes_one_whole_object(
    settings, storage, source, op_settings, slow_source
):
    proxy = TcpProxy.in_front_of(settings.s3_endpoint_url)
    try:
        export = ExportInFlight(
            settings,
            source=SourceDatabaseResource.from_settings(settings),
            storage=_proxied_storage(settings, proxy),
        )
        export.wait_streaming()
        proxy.down()
        faults.disarm(slow_source, "slow")
        time.sleep(2)
        proxy.up()
        row = export.finish()
    finally:
        proxy.close()

    assert export.result.success, row.error
    assert row.status == "COMPLETED"
    assert row.row_count == _expected_rows(source, export.spec)
    assert export.objects() == [row.s3_key]
    body = storage.client.get_object(Bucket=storage.bucket, Key=row.s3_key)["Body"].read()
    records = list(csv.reader(io.StringIO(body.decode())))
    assert len(records) == row.row_count + 1  # header + rows, none lost or doubled
    assert len({r[0] for r in records[1:]}) == row.row_count
    assert len(body) == row.file_size_bytes
    assert storage.pending_uploads(prefix=export.prefix) == []


def test_source_db_down_mid_export_is_retried_then_failed_with_the_reason(
    settings, storage, op_settings, slow_source
):
    proxy = TcpProxy.in_front_of(settings.source_database_url)
    try:
        export = ExportInFlight(settings, source=_proxied_source(settings, proxy), storage=storage)
        export.wait_streaming()
        proxy.down()
        row = export.finish()
    finally:
        proxy.close()

    assert not export.result.success
    assert row.status == "FAILED"
    assert row.error.startswith("OperationalError: "), row.error
    assert "Connection refused" in row.error, row.error
    assert row.attempts == MAX_RETRIES + 1
    assert export.objects() == []
    assert storage.pending_uploads(prefix=export.prefix) == []  # S3 was up: every attempt aborted its own


def test_source_db_blip_mid_export_is_retried_and_completes(
    settings, storage, source, op_settings, slow_source
):
    proxy = TcpProxy.in_front_of(settings.source_database_url)
    try:
        export = ExportInFlight(settings, source=_proxied_source(settings, proxy), storage=storage)
        export.wait_streaming()
        proxy.down()
        faults.disarm(slow_source, "slow")
        time.sleep(0.5)
        proxy.up()
        row = export.finish()
    finally:
        proxy.close()

    assert export.result.success, row.error
    assert row.status == "COMPLETED"
    assert row.attempts >= 2  # the first attempt lost its connection; a retry streamed it all again
    assert row.row_count == _expected_rows(source, export.spec)
    assert export.objects() == [row.s3_key]
    assert storage.pending_uploads(prefix=export.prefix) == []


def test_export_db_blip_mid_export_does_not_touch_the_stream(
    settings, storage, source, op_settings, slow_source
):
    """Progress and heartbeat are one best-effort write from the heartbeat thread: the COPY never waits
    on the export DB, so 3 s without it cost the export nothing (it used to fail the attempt)."""
    proxy = TcpProxy.in_front_of(settings.database_url)
    try:
        export = ExportInFlight(
            settings,
            source=source,
            storage=storage,
            export_db=ExportDbResource(url=proxy.url_for(settings.database_url)),
        )
        export.wait_streaming()
        proxy.down()
        time.sleep(3)
        proxy.up()
        faults.disarm(slow_source, "slow")
        row = export.finish()
    finally:
        proxy.close()

    assert export.result.success, row.error
    assert row.status == "COMPLETED"
    assert row.attempts == 1  # no retry: the stream never noticed
    assert row.row_count == _expected_rows(source, export.spec)
    assert export.objects() == [row.s3_key]


def _expected_rows(source: SourceDatabaseResource, spec: ExportSpec) -> int:
    with source.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM transactions WHERE currency = %s AND txn_date BETWEEN %s AND %s",
            (spec.owner, spec.date_from, spec.date_to),
        )
        return cur.fetchone()[0]


def test_a_stored_request_the_op_cannot_read_fails_the_export_at_once(settings, storage, op_settings):
    """Not an outage, but the same promise: a run that cannot even start its work ends its export."""
    export = ExportInFlight(
        settings,
        source=SourceDatabaseResource.from_settings(settings),
        storage=storage,
        params_overrides={"date_to": "2020-13-45"},
    )
    row = export.finish()

    assert not export.result.success
    assert row.status == "FAILED"
    assert row.attempts == 1  # permanent: no retry
    assert "the export's stored request cannot be read" in row.error, row.error
    assert "month must be in 1..12" in row.error, row.error
    assert "2020-13-45" in row.error, row.error
