"""`make bench-storm`: the month-end storm. N distinct tiny exports from M owners, posted in bursts.

Starts its own stack (PostgreSQL, S3, Redis, Dagster, workers, gateway) on free loopback ports under a
temp dir, seeds a small demo table, posts `--exports` distinct tiny exports (every key new: never
reused or attached) from `--owners` owners in bursts of `--burst`, and prints:

- exports/s (N / time until all are terminal), machine CPU-s per export (/proc/stat over the storm);
- POST p50/p99 (client side) and POST -> COMPLETED p50/p99 (created_at -> completed_at, DB clock);
- Dagster DB and export DB bytes per export (pg_database_size before/after, / N).

`--history H` then loads H historic exports into both databases with a bulk generator (each a copy of a
real finished run's rows: `runs`, `run_tags`, `event_logs`; and an EXPIRED `exports` row with its
events), and runs the same storm again, so an empty and a large store are measured side by side.
Bounded in count and time; everything it starts stops with it.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg2

from api.security import issue_token
from bench.history import load_history
from bench.small_exports import _machine_busy_jiffies, _percentile
from devstack.stack import LocalStack, Ports
from export_engine.settings import DEV_JWT_SECRET

EPOCH = date(2019, 1, 1)
TERMINAL = ("COMPLETED", "FAILED", "CANCELED", "EXPIRED", "SUPERSEDED")


@dataclass
class Storm:
    label: str
    n: int
    all_done_s: float
    machine_cpu_s: float
    post_ms: list[float]
    done_s: list[float]
    statuses: dict[str, int]
    dagster_bytes: int
    export_bytes: int


def _db_size(url: str) -> int:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        return int(cur.fetchone()[0])


def _dagster_url(stack: LocalStack) -> str:
    env = stack.env
    return (
        f"postgresql://{env['DAGSTER_PG_USER']}:{env['DAGSTER_PG_PASSWORD']}@{env['DAGSTER_PG_HOST']}"
        f":{env['DAGSTER_PG_PORT']}/{env['DAGSTER_PG_DB']}"
    )


class Poster:
    """Posts distinct tiny exports: owner i % M, a month no earlier storm of this run used."""

    def __init__(self, stack: LocalStack, owners: int) -> None:
        self.stack, self.owners, self.month = stack, owners, 0
        self.tokens = {o: issue_token(o, secret=DEV_JWT_SECRET) for o in self._names()}

    def _names(self) -> list[str]:
        return [f"demo-user-{u}" for u in range(1, self.owners + 1)]

    def storm(self, label: str, n: int, burst: int) -> Storm:
        first_month, self.month = self.month, self.month + math.ceil(n / self.owners)
        dagster_url, export_url = _dagster_url(self.stack), self.stack.env["DATABASE_URL"]
        dagster0, export0 = _db_size(dagster_url), _db_size(export_url)
        refs: list[str] = []
        post_ms: list[float] = []
        lock = threading.Lock()

        def post(client: httpx.Client, i: int) -> None:
            owner = f"demo-user-{i % self.owners + 1}"
            start = EPOCH + timedelta(days=31 * (first_month + i // self.owners))
            body = {
                "table_name": "transactions",
                "date_from": str(start),
                "date_to": str(start + timedelta(27)),
            }
            t0 = time.perf_counter()
            response = client.post(
                "/export", json=body, headers={"Authorization": f"Bearer {self.tokens[owner]}"}
            )
            with lock:
                post_ms.append((time.perf_counter() - t0) * 1000)
                if response.status_code == 202:
                    refs.append(response.json()["reference_id"])
                else:
                    print(f"  POST {i}: {response.status_code} {response.text[:160]}", file=sys.stderr)

        busy0, started = _machine_busy_jiffies(), time.monotonic()
        with (
            httpx.Client(base_url=self.stack.api_url, timeout=120) as client,
            ThreadPoolExecutor(burst) as pool,
        ):
            for first in range(0, n, burst):
                list(pool.map(lambda i: post(client, i), range(first, min(n, first + burst))))
        statuses = self._wait(refs, deadline=time.monotonic() + 600 + n)
        all_done = time.monotonic() - started
        cpu = (_machine_busy_jiffies() - busy0) / 100  # USER_HZ
        with psycopg2.connect(export_url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT extract(epoch FROM completed_at - created_at) FROM exports "
                "WHERE reference_id = ANY(%s) AND completed_at IS NOT NULL",
                (refs,),
            )
            done_s = [float(r[0]) for r in cur.fetchall()]
        return Storm(
            label, n, all_done, cpu, post_ms, done_s, statuses,
            _db_size(dagster_url) - dagster0, _db_size(export_url) - export0,
        )  # fmt: skip

    def _wait(self, refs: list[str], deadline: float) -> dict[str, int]:
        while True:
            with psycopg2.connect(self.stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT status, count(*) FROM exports WHERE reference_id = ANY(%s) GROUP BY status",
                    (refs,),
                )
                statuses = dict(cur.fetchall())
            if (
                sum(c for s, c in statuses.items() if s in TERMINAL) == len(refs)
                or time.monotonic() > deadline
            ):
                return statuses
            time.sleep(0.5)


def _print(storms: list[Storm]) -> None:
    rows = [
        ("exports", lambda s: f"{s.n:,}"),
        ("all terminal after (s)", lambda s: f"{s.all_done_s:.1f}"),
        ("exports/s", lambda s: f"{s.n / s.all_done_s:.2f}"),
        ("machine CPU-s per export", lambda s: f"{s.machine_cpu_s / s.n:.3f}"),
        ("POST p50 / p99 (ms)", lambda s: f"{_percentile(s.post_ms, .5):.0f} / {_percentile(s.post_ms, .99):.0f}"),
        ("POST->COMPLETED p50 / p99 (s)", lambda s: f"{_percentile(s.done_s, .5):.2f} / {_percentile(s.done_s, .99):.2f}"),
        ("Dagster DB bytes per export", lambda s: f"{s.dagster_bytes / s.n:,.0f}"),
        ("export DB bytes per export", lambda s: f"{s.export_bytes / s.n:,.0f}"),
        ("statuses", lambda s: ", ".join(f"{k} {v}" for k, v in sorted(s.statuses.items()))),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    print(f"{'':<{width}}  " + "  ".join(f"{s.label:>24}" for s in storms))
    for name, cell in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{cell(s):>24}" for s in storms))


# Run-queue settings compared side by side (`--variants`): the shipped dagster.yaml admits at most
# `max_concurrent_runs` (= worker slots) runs per 1 s dequeue tick.
VARIANTS: dict[str, dict[str, Any]] = {
    "shipped": {},
    # dequeue_interval_seconds is an integer in Dagster 1.13 (0.25 is refused): 1 s is the floor.
    "fast-queue": {"dequeue_use_threads": True, "dequeue_num_workers": 4},
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exports", type=int, default=1000)
    parser.add_argument("--owners", type=int, default=100)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument(
        "--history", type=int, default=0, help="historic exports loaded before a second storm"
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery worker nodes (2 processes each)")
    parser.add_argument(
        "--variants", default="shipped", help=f"comma-separated run-queue settings, of: {', '.join(VARIANTS)}"
    )
    parser.add_argument(
        "--runs-per-slot",
        type=float,
        default=1.0,
        help="max_concurrent_runs = worker slots x this (variants other than shipped)",
    )
    args = parser.parse_args()
    storms: list[Storm] = []
    for variant in args.variants.split(","):
        home = Path(tempfile.mkdtemp(prefix="bench-storm-"))
        stack = LocalStack(home, Ports.free())
        queue = dict(VARIANTS[variant])
        if variant != "shipped":
            queue["max_concurrent_runs"] = round(args.workers * 2 * args.runs_per_slot)
        try:
            stack.start_storage()
            stack.seed(50_000)
            stack.start_services(webserver=True, worker_nodes=args.workers, queue=queue)
            poster = Poster(stack, args.owners)
            storms.append(poster.storm(f"{variant}, empty", args.exports, args.burst))
            _print(storms[-1:])  # as soon as it is measured: a later variant may fail
            if args.history:
                started = time.monotonic()
                load_history(_dagster_url(stack), stack.env["DATABASE_URL"], args.history)
                print(f"loaded {args.history:,} historic exports in {time.monotonic() - started:.0f} s")
                storms.append(poster.storm(f"{variant}, +{args.history:,}", args.exports, args.burst))
        finally:
            stack.stop()
    _print(storms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
