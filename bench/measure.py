"""One measurement in a fresh process, so its peak RSS and CPU time belong to that export alone.

`python -m bench.measure '<job json>'` prints one line `BENCH-RESULT {...}`. The environment is the
stack's (DATABASE_URL, SOURCE_DATABASE_URL, S3_*), read through `Settings` as the Dagster op does.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import date
from typing import Any

MARKER = "BENCH-RESULT "


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def engine(job: dict[str, Any]) -> dict[str, Any]:
    """`run_export` exactly as the op calls it, into S3 or into the null client."""
    from bench.null_storage import NullStorage
    from export_engine.core.catalog import load_catalog
    from export_engine.core.export_spec import ExportSpec
    from export_engine.pipeline.export import run_export
    from export_engine.runs.resources import S3StorageResource, SourceDatabaseResource
    from export_engine.settings import Settings

    settings = Settings()  # type: ignore[call-arg]
    catalog = load_catalog(settings.catalog_path)
    source = SourceDatabaseResource.from_settings(settings)
    if job["sink"] == "null":
        storage: Any = NullStorage(
            part_size_mb=settings.multipart_part_size_mb, fingerprint=job.get("fingerprint", False)
        )
    else:
        storage = S3StorageResource.from_settings(settings)
    extra = {"compression": job["compression"]} if job.get("compression") else {}
    spec = ExportSpec(
        table_name=job["table"],
        date_from=date.fromisoformat(job["date_from"]),
        date_to=date.fromisoformat(job["date_to"]),
        owner=job["owner"],
        format=job["format"],
        **extra,
    )
    progress: list[tuple[float, int]] = []
    rss_start, cpu_start, started = _rss_mb(), _cpu(), time.perf_counter()
    result = run_export(
        spec,
        spec.object_key(f"bench-{uuid.uuid4()}", "bench"),
        catalog=catalog,
        source=source,
        storage=storage,
        on_progress=lambda rows: progress.append((time.perf_counter() - started, rows)),
        parallel=job.get("parallel", 1),
    )
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "cpu_s": _cpu() - cpu_start,
        "rows": result.row_count,
        "bytes": result.file_size_bytes,
        "rss_start_mb": rss_start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "s3_key": result.s3_key if job["sink"] == "s3" else None,
        "fingerprint": getattr(storage.client, "object_fingerprint", None) if job["sink"] == "null" else None,
        "progress_calls": len(progress),
        "progress_last": progress[-1][1] if progress else None,
    }


def package(job: dict[str, Any]) -> dict[str, Any]:
    """`stream_package` exactly as `package_op` drives it (a ZIP of `job["datasets"]`), into S3 or null."""
    from datetime import UTC, datetime

    from bench.null_storage import NullStorage
    from export_engine.core.catalog import load_catalog
    from export_engine.core.package_spec import PackageSpec
    from export_engine.pipeline.package import run_package
    from export_engine.runs.resources import S3StorageResource, SourceDatabaseResource
    from export_engine.settings import Settings

    settings = Settings()  # type: ignore[call-arg]
    catalog = load_catalog(settings.catalog_path)
    source = SourceDatabaseResource.from_settings(settings)
    if job["sink"] == "null":
        storage: Any = NullStorage(part_size_mb=settings.multipart_part_size_mb)
    else:
        storage = S3StorageResource.from_settings(settings)
    spec = PackageSpec.for_request(
        catalog,
        owner=job["owner"],
        datasets=job["datasets"],
        date_from=date.fromisoformat(job["date_from"]),
        date_to=date.fromisoformat(job["date_to"]),
        format=job["format"],
    )
    reference_id = f"bench-{uuid.uuid4()}"
    rss_start, cpu_start, started = _rss_mb(), _cpu(), time.perf_counter()
    result = run_package(
        spec,
        spec.object_key(reference_id, "bench"),
        reference_id=reference_id,
        created_at=datetime.now(UTC),
        catalog=catalog,
        source=source,
        storage=storage,
    )
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "cpu_s": _cpu() - cpu_start,
        "rows": result.row_count,
        "bytes": result.file_size_bytes,
        "rss_start_mb": rss_start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "s3_key": result.s3_key if job["sink"] == "s3" else None,
        "files": [{k: f[k] for k in ("path", "rows", "bytes")} for f in result.manifest["files"]],
    }


def xlsxwriter_baseline(job: dict[str, Any]) -> dict[str, Any]:
    """The XLSX target's reference: rows from a cursor into xlsxwriter's constant_memory mode."""
    import psycopg2
    import xlsxwriter

    rss_start, cpu_start, started = _rss_mb(), _cpu(), time.perf_counter()
    rows = 0
    with tempfile.TemporaryDirectory(prefix="bench-xlsx-") as tmp:
        path = os.path.join(tmp, "baseline.xlsx")
        workbook = xlsxwriter.Workbook(path, {"constant_memory": True, "remove_timezone": True})
        sheet = workbook.add_worksheet()
        with psycopg2.connect(job["dsn"]) as conn, conn.cursor(name="bench_xlsx") as cur:
            cur.itersize = 10_000
            cur.execute(job["select_sql"])
            for row in cur:
                if rows == 0:
                    sheet.write_row(0, 0, [column.name for column in cur.description])
                rows += 1
                sheet.write_row(rows, 0, [", ".join(v) if isinstance(v, list) else v for v in row])
        workbook.close()
        size = os.path.getsize(path)
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": _cpu() - cpu_start,
        "rows": rows,
        "bytes": size,
        "rss_start_mb": rss_start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    job = json.loads(sys.argv[1])
    outcome = {"engine": engine, "package": package, "xlsxwriter": xlsxwriter_baseline}[job["kind"]](job)
    print(MARKER + json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
