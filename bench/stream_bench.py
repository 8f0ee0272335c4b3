"""`POST /export/stream` timed over real HTTP, next to the raw COPY of the same query.

    python -m bench.stream_bench [--rounds 5] [--home .local/bench-stream]

Starts PostgreSQL and the S3 server on free ports (data kept under --home), seeds one owner, and
runs the gateway alone (`uvicorn api.main:app`, no Dagster: a stream needs none) in its own process.
Reports, as medians: the time to the first byte of a 1,000-row CSV; a ~10,000-row CSV, XLSX and PDF
end to end; the raw COPY of the same 10,000 rows into memory (psycopg2, no HTTP); and the gateway's
peak RSS.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import httpx
import psycopg2

from bench import dataset
from devstack.processes import PROJECT_ROOT, free_port
from devstack.stack import LocalStack, Ports

_EXTERNAL = ("DATABASE_URL", "DAGSTER_PG_URL", "SOURCE_DATABASE_URL", "S3_ENDPOINT_URL", "JWT_SECRET")


def _raw_copy(url: str, date_from: str, date_to: str) -> float:
    sink = io.BytesIO()
    started = time.perf_counter()
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.copy_expert(
            cur.mogrify(
                "COPY (SELECT * FROM transactions WHERE user_id = %s AND txn_date BETWEEN %s AND %s "
                "ORDER BY txn_date, id) TO STDOUT WITH (FORMAT csv, HEADER)",
                (dataset.OWNER, date_from, date_to),
            ),
            sink,
        )
    return time.perf_counter() - started


def _stream(client: httpx.Client, body: dict, headers: dict) -> tuple[float, float, int]:
    """(seconds to the first body byte, seconds to the last, bytes)."""
    started = time.perf_counter()
    first = None
    size = 0
    with client.stream("POST", "/export/stream", json=body, headers=headers) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if first is None:
                first = time.perf_counter() - started
            size += len(chunk)
    return first or 0.0, time.perf_counter() - started, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--home", type=Path, default=PROJECT_ROOT / ".local" / "bench-stream")
    args = parser.parse_args(argv)
    environ = {k: v for k, v in os.environ.items() if k not in _EXTERNAL}
    stack = LocalStack(args.home, Ports.free(), environ=environ)
    gateway = None
    try:
        env = stack.start_storage()
        admin = env["SOURCE_ADMIN_URL"]
        dataset.ensure_rows(admin, 20_000)
        small = dataset.range_with_rows(admin, 1_000)
        large = dataset.range_with_rows(admin, 10_000)
        port = free_port()
        gateway_env = {
            **env,
            "STREAM_MAX_ROWS": "20000",
            "DAGSTER_PORT": str(free_port()),
            "LOG_LEVEL": "WARNING",
        }
        gateway = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port), "--log-level", "warning"],
            env=gateway_env,
            cwd=PROJECT_ROOT,
        )
        from api.security import issue_token
        from export_engine.settings import DEV_JWT_SECRET

        headers = {"Authorization": f"Bearer {issue_token(dataset.OWNER, secret=DEV_JWT_SECRET)}"}
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        while True:
            try:
                client.get("/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.2)

        def body(rng: dataset.DateRange, fmt: str) -> dict:
            return {
                "table_name": "transactions",
                "date_from": str(rng.date_from),
                "date_to": str(rng.date_to),
                "format": fmt,
            }

        _stream(client, body(small, "csv"), headers)  # warm-up: imports, pools
        results: dict[str, object] = {
            "rows_small": small.rows,
            "rows_large": large.rows,
            "rounds": args.rounds,
        }
        firsts = [_stream(client, body(small, "csv"), headers)[0] for _ in range(args.rounds * 4)]
        results["csv_1k_first_byte_ms"] = round(median(firsts) * 1000, 1)
        raw = [
            _raw_copy(env["SOURCE_DATABASE_URL"], str(large.date_from), str(large.date_to))
            for _ in range(args.rounds)
        ]
        results["raw_copy_10k_ms"] = round(median(raw) * 1000, 1)
        for fmt in ("csv", "jsonl", "xlsx", "pdf"):
            runs = [_stream(client, body(large, fmt), headers) for _ in range(args.rounds)]
            results[f"{fmt}_10k_ms"] = round(median(r[1] for r in runs) * 1000, 1)
            results[f"{fmt}_10k_bytes"] = runs[0][2]
        status = Path(f"/proc/{gateway.pid}/status").read_text()
        results["gateway_peak_rss_mb"] = round(
            int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024, 1
        )
        print(json.dumps(results, indent=2))
        return 0
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait()
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
