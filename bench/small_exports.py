"""`make bench-small`: many tiny exports at once, per-process launcher vs Celery run workers, same run.

Starts its own stack (PostgreSQL, S3, Redis) on free ports under a temp dir, seeds a small demo table,
then for each launcher (DefaultRunLauncher: a fresh process per run; CeleryRunLauncher: tasks in
long-lived workers) posts N distinct tiny exports (one owner each, ~a month of one user: a few rows) at
the same moment and prints:

- machine CPU-s per export: every core's non-idle time from /proc/stat over the burst, divided by N
  (counts everything running on the machine, other people's work too: read it beside the load average);
- stack CPU-s per export: user+system time of this stack's own processes (and their reaped children);
- POST latency p50/p99 (client side), POST -> COMPLETED p50/p99 (the export row's created_at ->
  completed_at, database clock), and the time until all N are done.

Then, with the workers, keeps posting bursts until `--rss-exports` exports ran and prints the worker
processes' RSS after 100 and after the last one.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import psycopg2

from api.security import issue_token
from bench import latency_modes
from devstack.stack import LocalStack, Ports
from export_engine.settings import DEV_JWT_SECRET

USERS = 100
EPOCH = date(2019, 1, 1)
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Burst:
    launcher: str
    n: int
    post_ms: list[float]
    done_s: list[float]
    all_done_s: float
    machine_cpu_s: float
    stack_cpu_s: float
    parts_cpu_s: dict[str, float]
    statuses: dict[str, int]
    load: str
    pg: dict[str, dict[str, int]]
    events: dict[str, int]
    connections: dict[str, int]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(v for v in values if v == v)  # failed POSTs (NaN) are reported, not ranked
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def _machine_busy_jiffies() -> int:
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle


def _proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()  # fields from `state` on


def _stack_sessions(stack: LocalStack) -> dict[int, str]:
    """Session id -> part name: every managed process leads its own session; so does the postmaster."""
    sessions = {p.process.pid: p.name.split("-exports")[0] for p in stack.processes}
    if stack.postgres is not None:
        pid_file = stack.home / "pgdata" / "postmaster.pid"
        try:
            postmaster = int(pid_file.read_text().split()[0])
            if (fields := _proc_stat(postmaster)) is not None:
                sessions[int(fields[3])] = "postgres"
        except (OSError, ValueError, IndexError):
            pass
    return sessions


def _stack_cpu_jiffies(sessions: dict[int, str]) -> dict[str, int]:
    """utime+stime+cutime+cstime per part, over every live process in the stack's sessions (reaped
    children count in their parent's c-times)."""
    total: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _proc_stat(int(entry))
        if fields is None or int(fields[3]) not in sessions:
            continue
        name = sessions[int(fields[3])]
        total[name] = total.get(name, 0) + sum(int(x) for x in fields[11:15])
    return total


def _rss_mb(pids: list[int]) -> list[float]:
    out = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                out.append(int(line.split()[1]) / 1024)
    return out


def _worker_pids(stack: LocalStack) -> tuple[list[int], list[int]]:
    """(worker parents, pool processes)."""
    parents = [w.process.pid for w in stack.workers]
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _proc_stat(int(entry))) is not None and int(fields[1]) in parents:
            children.append(int(entry))
    return parents, children


_months = iter(range(10_000))


def _body(i: int, month: int) -> tuple[str, dict]:
    """Export i of a burst: its own owner and month, so every key is new (never reused or attached)."""
    owner = f"demo-user-{i % USERS + 1}"
    start = EPOCH + timedelta(days=31 * (month + i // USERS))
    body = {
        "table_name": "transactions",
        "date_from": start.isoformat(),
        "date_to": (start + timedelta(days=29)).isoformat(),
        "format": "csv",
    }
    return owner, body


def burst(stack: LocalStack, launcher: str, n: int) -> Burst:
    tokens = {
        f"demo-user-{u}": issue_token(f"demo-user-{u}", secret=DEV_JWT_SECRET) for u in range(1, USERS + 1)
    }
    month = next(_months)
    for _ in range(1, -(-n // USERS)):
        next(_months)
    requests = [_body(i, month) for i in range(n)]
    post_ms: list[float] = [0.0] * n
    refs: list[str | None] = [None] * n
    gate = threading.Barrier(n + 1)

    def post(i: int) -> None:
        owner, body = requests[i]
        with httpx.Client(base_url=stack.api_url, timeout=120) as client:
            # Not connected ahead: on a busy machine the gate can take longer to open than uvicorn's
            # 5 s keep-alive, which then resets the idle connection under the POST.
            gate.wait()
            started = time.perf_counter()
            try:
                response = client.post(
                    "/export", json=body, headers={"Authorization": f"Bearer {tokens[owner]}"}
                )
            except httpx.HTTPError as exc:
                post_ms[i] = float("nan")
                print(f"  POST {i}: {type(exc).__name__}: {exc}", file=sys.stderr)
                return
            post_ms[i] = (time.perf_counter() - started) * 1000
            if response.status_code == 202:
                refs[i] = response.json()["reference_id"]
            else:
                print(f"  POST {i}: {response.status_code} {response.text[:200]}", file=sys.stderr)

    sessions = _stack_sessions(stack)
    pg0 = _pg_counters(stack)
    pg_log = stack.home / "logs" / "postgres.log"
    pg_log_offset = pg_log.stat().st_size if pg_log.exists() else 0
    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    load = _loadavg().split()[:3]
    machine0, stack0, self0 = _machine_busy_jiffies(), _stack_cpu_jiffies(sessions), os.times()
    started = time.monotonic()
    gate.wait()
    for t in threads:
        t.join()
    created = [r for r in refs if r]
    with psycopg2.connect(stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        while True:
            cur.execute(
                "SELECT status, extract(epoch FROM completed_at - created_at) FROM exports"
                " WHERE reference_id = ANY(%s)",
                (created,),
            )
            rows = cur.fetchall()
            conn.commit()
            if all(status not in ("PENDING", "RUNNING") for status, _ in rows):
                break
            time.sleep(0.1)
    all_done = time.monotonic() - started
    self1 = os.times()
    time.sleep(1.5)  # idle backends flush their statistics about once a second
    pg1 = _pg_counters(stack)
    machine_cpu = (_machine_busy_jiffies() - machine0) / _CLK_TCK
    stack1 = _stack_cpu_jiffies(sessions)
    parts = {name: (stack1.get(name, 0) - stack0.get(name, 0)) / _CLK_TCK for name in stack1}
    parts["bench client"] = (self1.user - self0.user) + (self1.system - self0.system)
    stack_cpu = sum(parts.values())
    statuses: dict[str, int] = {}
    for status, _ in rows:
        statuses[status] = statuses.get(status, 0) + 1
    return Burst(
        launcher,
        n,
        post_ms,
        [float(s) for status, s in rows if status == "COMPLETED" and s is not None],
        all_done,
        machine_cpu,
        stack_cpu,
        parts,
        statuses,
        " ".join(load),
        {db: {k: v - pg0.get(db, {}).get(k, 0) for k, v in c.items()} for db, c in pg1.items()},
        _events_per_type(stack, created),
        _connections_by_application(pg_log, pg_log_offset),
    )


def _connections_by_application(log: Path, offset: int) -> dict[str, int]:
    """PostgreSQL connections opened since `offset`, by application_name (log_connections is on)."""
    if not log.exists():
        return {}
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    counts: dict[str, int] = {}
    for match in re.finditer(r"connection authorized: .*?(?:application_name=(\S+))?$", text, re.M):
        name = match.group(1) or "(none)"
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _log_connections(stack: LocalStack) -> None:
    """Have PostgreSQL log every connection with its application_name (counted per burst)."""
    if stack.postgres is None:
        return
    conn = psycopg2.connect(stack.postgres.url())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("ALTER SYSTEM SET log_connections = 'on'")
        cur.execute("SELECT pg_reload_conf()")
    conn.close()


_PG_COUNTERS = ("sessions", "xact_commit", "tup_inserted", "tup_updated", "tup_returned")


def _pg_counters(stack: LocalStack) -> dict[str, dict[str, int]]:
    """Per database: connections opened, transactions committed, rows written/read (pg_stat_database)."""
    if stack.postgres is None:
        return {}
    with psycopg2.connect(stack.postgres.url()) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT datname, {', '.join(_PG_COUNTERS)} FROM pg_stat_database"
            " WHERE datname IN ('dagster', 'exports', 'transactions')"
        )
        rows = cur.fetchall()
    conn.close()
    return {row[0]: dict(zip(_PG_COUNTERS, row[1:], strict=True)) for row in rows}


def _events_per_type(stack: LocalStack, refs: list[str]) -> dict[str, int]:
    """Dagster event-log rows of this burst's runs, by type (what the event log stores per export)."""
    if stack.postgres is None or not refs:
        return {}
    with psycopg2.connect(stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT dagster_run_id FROM exports WHERE reference_id = ANY(%s)", (refs,))
        run_ids = [r for (r,) in cur.fetchall() if r]
    conn.close()
    with psycopg2.connect(stack.env["DAGSTER_PG_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT coalesce(dagster_event_type, 'log message'), count(*) FROM event_logs"
            " WHERE run_id = ANY(%s) GROUP BY 1 ORDER BY 2 DESC",
            (run_ids,),
        )
        rows = cur.fetchall()
    conn.close()
    return dict(rows)


def _print(b: Burst) -> None:
    print(
        f"| {b.launcher} | {b.n} | {b.machine_cpu_s / b.n:.2f} | {b.stack_cpu_s / b.n:.2f} "
        f"| {_percentile(b.post_ms, 0.5):.0f} / {_percentile(b.post_ms, 0.99):.0f} "
        f"| {_percentile(b.done_s, 0.5):.2f} / {_percentile(b.done_s, 0.99):.2f} "
        f"| {b.all_done_s:.1f} | {b.statuses} | {b.load} |",
        flush=True,
    )
    per_part = ", ".join(
        f"{k} {v / b.n:.2f}" for k, v in sorted(b.parts_cpu_s.items(), key=lambda kv: -kv[1])
    )
    print(f"|   {b.launcher}: stack CPU-s per export by part: {per_part} |", flush=True)
    pg = "; ".join(
        f"{db} " + ", ".join(f"{k} {v / b.n:.1f}" for k, v in counters.items())
        for db, counters in sorted(b.pg.items())
    )
    print(f"|   {b.launcher}: PostgreSQL per export: {pg} |", flush=True)
    events = ", ".join(f"{k} {v / b.n:.1f}" for k, v in b.events.items())
    conns = ", ".join(f"{k} {v / b.n:.1f}" for k, v in b.connections.items())
    print(
        f"|   {b.launcher}: PostgreSQL connections opened per export, by application: {conns} |", flush=True
    )
    print(
        f"|   {b.launcher}: Dagster event-log rows per export: {sum(b.events.values()) / b.n:.1f} ({events}) |",
        flush=True,
    )


HEADER = (
    "| launcher | exports | machine CPU-s / export | stack CPU-s / export | POST p50 / p99 ms "
    "| POST->COMPLETED p50 / p99 s | all done s | statuses | load avg at start |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100, help="tiny exports posted at once (default 100)")
    parser.add_argument(
        "--n-default",
        type=int,
        help="N for the per-process launcher (default --n; it is slow on a busy machine)",
    )
    parser.add_argument("--rows", type=int, default=100_000, help="demo rows to seed (default 100,000)")
    parser.add_argument("--rss-exports", type=int, default=1000, help="worker RSS after this many (0: skip)")
    parser.add_argument("--launchers", default="default,celery", help="which, in order (default,celery)")
    parser.add_argument("--worker-nodes", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2, help="pool processes per worker node")
    parser.add_argument("--singles", type=int, default=0, help="then K tiny exports one at a time (0: skip)")
    parser.add_argument(
        "--fairness",
        action="store_true",
        help="then another owner's tiny exports while one owner has 30 large",
    )
    args = parser.parse_args()
    assert args.n <= 20 * USERS, "at most 20 distinct months per owner and phase"

    home = Path(tempfile.mkdtemp(prefix="bench-small-"))
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DAGSTER_", "CELERY_"))
    }
    environ.update(
        OWNER_ACTIVE_EXPORT_LIMIT="1000",
        LOG_LEVEL="WARNING",
        CELERY_WORKER_CONCURRENCY=str(args.worker_concurrency),
    )
    stack = LocalStack(home, Ports.free(), environ=environ)
    print(f"stack under {home}; machine: {os.cpu_count()} cores, load {_loadavg()}")
    results = []
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))  # stop the stack
    try:
        stack.start_storage()
        stack.seed(args.rows)
        _log_connections(stack)
        print(HEADER, flush=True)
        for launcher in args.launchers.split(","):
            stack.start_services(launcher=launcher, worker_nodes=args.worker_nodes)
            burst(stack, launcher, 4)  # warm-up: the first run of every process
            n = args.n_default if launcher == "default" and args.n_default else args.n
            result = burst(stack, launcher, n)
            results.append(result)
            _print(result)
            if args.singles:
                latency_modes.singles(stack, launcher, args.singles)
            if args.fairness and launcher == "celery":
                latency_modes.fairness(stack, launcher, max(args.singles, 5))
            if launcher == "celery" and args.rss_exports:
                _rss_series(stack, args)
            stack.stop_services()
    finally:
        stack.stop()
    return 0


def _rss_series(stack: LocalStack, args: argparse.Namespace) -> None:
    done = args.n + 4  # the workers ran this burst and their own 4-export warm-up
    done += args.singles + (2 * max(args.singles, 5) + 30 if args.fairness else 0)  # and the latency modes
    marks: dict[int, tuple[list[float], list[float]] | None] = {100: None, args.rss_exports: None}
    while done < args.rss_exports:
        n = min(USERS, args.rss_exports - done)
        b = burst(stack, "celery", n)
        _print(b)
        done += n
        reached = [m for m in marks if marks[m] is None and done >= m]
        if reached:  # one line per burst, however many marks it passed
            parents, children = _worker_pids(stack)
            rss = (_rss_mb(parents), _rss_mb(children))
            marks.update(dict.fromkeys(reached, rss))
            print(
                f"worker RSS after {done} exports: parents {[round(x) for x in rss[0]]} MB, "
                f"pool processes {[round(x) for x in rss[1]]} MB "
                f"(burst of {n}: {b.stack_cpu_s / n:.2f} stack CPU-s/export, "
                f"all done {b.all_done_s:.1f}s)",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
