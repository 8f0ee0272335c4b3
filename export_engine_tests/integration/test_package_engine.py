"""The package stream against a real PostgreSQL and a real S3 server: one ZIP, nothing staged."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import uuid
import zipfile
from datetime import UTC, date, datetime

import pytest

from export_engine.core.package_spec import PackageSpec
from export_engine.pipeline.package import run_package
from export_engine.pipeline.package_plan import PackageProgress, plan
from export_engine.runs.resources import S3StorageResource
from export_engine_tests.helpers import expected_csv

ALL = ["accounts", "daily_spending_by_tag", "monthly_trends", "tags", "transactions"]
_DATA_DESCRIPTOR = 0x08
_ZIP64_EXTRA = 0x0001


def _object_bytes(storage: S3StorageResource, key: str) -> bytes:
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


def _extra_ids(extra: bytes) -> set[int]:
    ids, at = set(), 0
    while at + 4 <= len(extra):
        header, size = struct.unpack_from("<HH", extra, at)
        ids.add(header)
        at += 4 + size
    return ids


def test_package_is_one_zip64_stream_whose_entries_are_the_single_exports(stack, catalog, source, storage):
    spec = PackageSpec.for_request(
        catalog, owner="demo-user-5", datasets=ALL, date_from=date(2022, 1, 1), date_to=date(2022, 6, 30)
    )
    reference_id = str(uuid.uuid4())
    progress = PackageProgress([part for _, _, part in plan(spec, catalog)])
    result = run_package(
        spec,
        spec.object_key(reference_id, "run-1"),
        reference_id=reference_id,
        created_at=datetime.now(UTC),
        catalog=catalog,
        source=source,
        storage=storage,
        progress=progress,
    )
    body = _object_bytes(storage, result.s3_key)
    assert len(body) == result.file_size_bytes
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    assert archive.namelist() == [f"{name}.csv" for name in ALL] + ["manifest.json"]
    for info in archive.infolist():
        assert info.compress_type == zipfile.ZIP_STORED
        assert info.flag_bits & _DATA_DESCRIPTOR  # streamed: sizes after the data
    for info in archive.infolist()[:-1]:
        # ZIP64 in the local header, so an entry of any size is representable
        local_extra_len = struct.unpack_from("<H", body, info.header_offset + 28)[0]
        name_len = len(info.filename.encode())
        start = info.header_offset + 30 + name_len
        assert _ZIP64_EXTRA in _extra_ids(body[start : start + local_extra_len]), info.filename
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["package_id"] == reference_id and manifest["owner"] == "demo-user-5"
    for (dataset, entry_spec), entry in zip(spec.entries(catalog), manifest["files"], strict=True):
        data = archive.read(entry["path"])
        assert data == expected_csv(stack.env["SOURCE_ADMIN_URL"], dataset, entry_spec), dataset.id
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    assert result.row_count == sum(f["rows"] for f in manifest["files"])
    rows, parts = progress.snapshot()
    assert rows == result.row_count and {p["status"] for p in parts} == {"COMPLETED"}
    assert storage.pending_uploads(prefix=spec.object_prefix(reference_id)) == []


def test_a_dataset_that_fails_aborts_the_whole_package(stack, catalog, source, storage):
    """`vanished` (test catalog: a missing table) after a good entry: no object, no upload left."""
    spec = PackageSpec.for_request(
        catalog,
        owner="demo-user-5",
        datasets=["accounts", "vanished"],
        date_from=date(2022, 1, 1),
        date_to=date(2022, 1, 31),
    )
    reference_id = str(uuid.uuid4())
    with pytest.raises(Exception, match="vanished"):
        run_package(
            spec,
            spec.object_key(reference_id, "run-1"),
            reference_id=reference_id,
            created_at=datetime.now(UTC),
            catalog=catalog,
            source=source,
            storage=storage,
        )
    prefix = spec.object_prefix(reference_id)
    assert storage.pending_uploads(prefix=prefix) == []
    assert list(storage.objects(prefix)) == []
