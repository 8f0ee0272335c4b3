"""Two latency modes of `make bench-small`, on the stack the burst used.

- `--singles K`: K tiny exports one at a time (each posted once the previous one is COMPLETED): the
  unloaded POST -> COMPLETED time, the issue's "p50 <= 1.0 s" target.
- `--fairness`: one owner posts 30 large exports (`force_refresh` XLSX of its whole history, so none is
  reused or attached), and while they are queued another owner posts K tiny ones, one at a time: the
  issue's "within 2x its unloaded time" target (the run queue gives one owner at most OWNER_RUN_LIMIT
  slots, so the other owner's runs do not wait behind them).
"""

from __future__ import annotations

import statistics
import time
from datetime import date, timedelta

import httpx
import psycopg2

from api.security import issue_token
from devstack.stack import LocalStack
from export_engine.settings import DEV_JWT_SECRET

_ACTIVE = ("PENDING", "RUNNING")


def _post(client: httpx.Client, owner: str, body: dict) -> tuple[str, float]:
    token = issue_token(owner, secret=DEV_JWT_SECRET)
    started = time.perf_counter()
    response = client.post("/export", json=body, headers={"Authorization": f"Bearer {token}"})
    post_ms = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return response.json()["reference_id"], post_ms


def _wait_done(stack: LocalStack, reference_id: str) -> tuple[str, float]:
    """(status, POST -> end seconds by the database's clock) once the export left PENDING/RUNNING."""
    conn = psycopg2.connect(stack.env["DATABASE_URL"])
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            while True:
                cur.execute(
                    "SELECT status, extract(epoch FROM coalesce(completed_at, now()) - created_at)"
                    " FROM exports WHERE reference_id = %s",
                    (reference_id,),
                )
                status, seconds = cur.fetchone()
                if status not in _ACTIVE:
                    return status, float(seconds)
                time.sleep(0.05)
    finally:
        conn.close()


def _tiny(k: int, salt: int) -> dict:
    start = date(2019, 1, 1) + timedelta(days=31 * (k % 60) + salt % 28)
    return {
        "table_name": "transactions",
        "date_from": start.isoformat(),
        "date_to": (start + timedelta(days=29)).isoformat(),
    }


def _singles(stack: LocalStack, owner: str, k: int, salt: int) -> tuple[list[float], list[float]]:
    post_ms, done_s, refs = [], [], []
    with httpx.Client(base_url=stack.api_url, timeout=120) as client:
        for i in range(k):
            ref, ms = _post(client, owner, _tiny(i, salt))
            status, seconds = _wait_done(stack, ref)
            if status != "COMPLETED":
                print(f"  single {i}: {status}")
                continue
            post_ms.append(ms)
            done_s.append(seconds)
            refs.append(ref)
    print(f"|   where the time goes (median s after the export row was created): {_phases(stack, refs)} |")
    return post_ms, done_s


_PHASES = (
    "PIPELINE_ENQUEUED",
    "PIPELINE_STARTING",
    "PIPELINE_START",
    "STEP_START",
    "STEP_SUCCESS",
    "PIPELINE_SUCCESS",
)


def _phases(stack: LocalStack, refs: list[str]) -> str:
    """The run's events (Dagster DB) against the export row's created_at / completed_at (export DB)."""
    if not refs:
        return "-"
    exports = psycopg2.connect(stack.env["DATABASE_URL"])
    dagster = psycopg2.connect(stack.env["DAGSTER_PG_URL"])
    try:
        with exports.cursor() as cur:
            cur.execute(
                "SELECT dagster_run_id, extract(epoch FROM created_at), extract(epoch FROM completed_at)"
                " FROM exports WHERE reference_id = ANY(%s)",
                (refs,),
            )
            rows = cur.fetchall()
        offsets: dict[str, list[float]] = {}
        for run_id, created, completed in rows:
            with dagster.cursor() as cur:
                cur.execute(
                    "SELECT dagster_event_type, extract(epoch FROM min(timestamp)) FROM event_logs"
                    " WHERE run_id = %s AND dagster_event_type = ANY(%s) GROUP BY 1",
                    (run_id, list(_PHASES)),
                )
                for kind, at in cur.fetchall():
                    offsets.setdefault(kind, []).append(float(at) - float(created))
            offsets.setdefault("row COMPLETED", []).append(float(completed) - float(created))
    finally:
        exports.close()
        dagster.close()
    order = [*_PHASES, "row COMPLETED"]
    return ", ".join(f"{k} {statistics.median(offsets[k]):.2f}" for k in order if k in offsets)


def _summary(post_ms: list[float], done_s: list[float]) -> str:
    if not done_s:
        return "none completed"
    return (
        f"POST p50 {statistics.median(post_ms):.0f} ms; POST -> COMPLETED p50 {statistics.median(done_s):.2f} s "
        f"(min {min(done_s):.2f}, max {max(done_s):.2f}, n={len(done_s)})"
    )


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def singles(stack: LocalStack, launcher: str, k: int, *, owner: str | None = None, salt: int = 3) -> float:
    owner = owner or ("demo-user-7" if launcher == "default" else "demo-user-17")  # distinct keys per phase
    load = _load()
    post_ms, done_s = _singles(stack, owner, k, salt)
    print(
        f"| {launcher}: {k} tiny exports one at a time: {_summary(post_ms, done_s)}; load {load} |",
        flush=True,
    )
    return statistics.median(done_s) if done_s else float("nan")


def fairness(stack: LocalStack, launcher: str, k: int, *, large: int = 30) -> None:
    unloaded = singles(stack, f"{launcher} unloaded", k, owner="demo-user-8", salt=5)
    big_owner = "demo-user-9"
    body = {
        "table_name": "transactions",
        "date_from": "2019-01-01",
        "date_to": date.today().isoformat(),
        "format": "xlsx",
        "force_refresh": True,
    }
    load = _load()
    with httpx.Client(base_url=stack.api_url, timeout=120) as client:
        refs = [_post(client, big_owner, body)[0] for _ in range(large)]
    time.sleep(1.0)  # the queue has taken the first ones
    post_ms, done_s = _singles(stack, "demo-user-8", k, salt=11)
    conn = psycopg2.connect(stack.env["DATABASE_URL"])
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FILTER (WHERE status IN ('PENDING', 'RUNNING')), max(row_count)"
                " FROM exports WHERE reference_id = ANY(%s)",
                (refs,),
            )
            still_active, rows = cur.fetchone()
    finally:
        conn.close()
    ratio = statistics.median(done_s) / unloaded if done_s else float("nan")
    print(
        f"| {launcher}: another owner's tiny exports while {large} large ({rows} rows, XLSX) were queued: "
        f"{_summary(post_ms, done_s)}; {ratio:.2f}x unloaded; {still_active} of the {large} still active "
        f"after them; load {load} |",
        flush=True,
    )
    for ref in refs:
        _wait_done(stack, ref)
