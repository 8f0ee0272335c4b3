"""The N-slice parallel CSV export against a real PostgreSQL and a real S3 server."""

from __future__ import annotations

import uuid
from datetime import date

import psycopg2
import psycopg2.errors
import pytest

from export_engine.core.catalog import Catalog, Dataset
from export_engine.core.export_spec import ExportSpec
from export_engine.pipeline.export import run_export
from export_engine.runs.resources import S3StorageResource
from export_engine_tests.helpers import expected_csv


@pytest.fixture(scope="module")
def wide(catalog) -> Catalog:
    """Almost the whole table in one export (owner = currency 'USD'): several 5 MiB parts per slice."""
    return Catalog(
        {"transactions": Dataset(**{**catalog.get("transactions").__dict__, "owner_column": "currency"})}
    )


def _object_bytes(storage: S3StorageResource, key: str) -> bytes:
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


@pytest.mark.parametrize("slices", [2, 3, 7])
def test_parallel_json_lines_are_the_sequential_file(wide, source, storage, slices):
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2030, 1, 1), owner="USD", format="jsonl")
    sequential = run_export(
        spec, spec.object_key(str(uuid.uuid4()), "run-1"), catalog=wide, source=source, storage=storage
    )
    parallel = run_export(
        spec,
        spec.object_key(str(uuid.uuid4()), "run-1"),
        catalog=wide,
        source=source,
        storage=storage,
        parallel=slices,
    )

    body = _object_bytes(storage, parallel.s3_key)
    assert body == _object_bytes(storage, sequential.s3_key)
    assert body.count(b"\n") == parallel.row_count == sequential.row_count > 10_000
    for key in (sequential.s3_key, parallel.s3_key):  # this test's uploads, whatever others left
        assert storage.pending_uploads(prefix=key) == []


@pytest.mark.parametrize("slices", [2, 3, 7])
def test_parallel_export_is_the_sequential_file(stack, wide, source, storage, slices):
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2030, 1, 1), owner="USD")
    sequential = run_export(
        spec, spec.object_key(str(uuid.uuid4()), "run-1"), catalog=wide, source=source, storage=storage
    )
    parallel = run_export(
        spec,
        spec.object_key(str(uuid.uuid4()), "run-1"),
        catalog=wide,
        source=source,
        storage=storage,
        parallel=slices,
    )

    body = _object_bytes(storage, parallel.s3_key)
    assert body == _object_bytes(storage, sequential.s3_key)
    assert body == expected_csv(stack.env["SOURCE_ADMIN_URL"], wide.get("transactions"), spec)
    assert body.count(b"id,user_id,") == 1  # one header, from the first slice
    assert parallel.row_count == sequential.row_count
    assert parallel.file_size_bytes == sequential.file_size_bytes == len(body)
    assert "-" in storage.client.head_object(Bucket=storage.bucket, Key=parallel.s3_key)["ETag"]
    for key in (sequential.s3_key, parallel.s3_key):  # this test's uploads, whatever others left
        assert storage.pending_uploads(prefix=key) == []


def test_parallel_export_of_no_rows_is_the_header(stack, catalog, source, storage):
    spec = ExportSpec("transactions", date(2020, 1, 1), date(2020, 12, 31), owner="nobody")
    result = run_export(
        spec,
        spec.object_key(str(uuid.uuid4()), "run-1"),
        catalog=catalog,
        source=source,
        storage=storage,
        parallel=4,
    )
    assert _object_bytes(storage, result.s3_key) == expected_csv(
        stack.env["SOURCE_ADMIN_URL"], catalog.get("transactions"), spec
    )
    assert result.row_count == 0


def test_parallel_progress_sums_the_slices(stack, wide, source, storage):
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2030, 1, 1), owner="USD")
    progress: list[int] = []
    result = run_export(
        spec,
        spec.object_key(str(uuid.uuid4()), "run-1"),
        catalog=wide,
        source=source,
        storage=storage,
        parallel=2,
        on_progress=progress.append,
    )
    assert progress == sorted(progress)
    assert all(0 <= rows <= result.row_count * 1.05 for rows in progress)


def test_a_failing_slice_aborts_the_upload_with_the_original_error(exploding, source, storage):
    """One slice divides by zero deep into its stream; the other is cancelled; nothing is left in S3."""
    spec = ExportSpec("exploding", date(2019, 1, 1), date(2030, 1, 1), owner="posted")
    reference_id = str(uuid.uuid4())
    with pytest.raises(psycopg2.errors.DivisionByZero):
        run_export(
            spec,
            spec.object_key(reference_id, "run-1"),
            catalog=Catalog({"exploding": exploding}),
            source=source,
            storage=storage,
            parallel=2,
        )
    assert storage.pending_uploads(prefix="exports/exploding/") == []
    assert not storage.exists(spec.object_key(reference_id, "run-1"))
