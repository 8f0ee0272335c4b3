"""`make load`: 1,000 POSTs from 50 concurrent clients over 100 distinct keys against a running stack.

Checks the dedup contract under load: exactly one export runs per key, every other answer is a reuse
or an attach of that export, no 5xx. Prints latency percentiles and the Dagster run count.
Start the stack first (`make run`), then `make load` (or `python -m loadtest --help`).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import httpx

from api.security import issue_token
from export_engine.settings import DEV_JWT_SECRET


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def _wait_for_all(
    client: httpx.Client, created: dict[tuple, list[str]], tokens: dict[str, str], *, timeout: float
) -> tuple[float, dict[str, int]]:
    """Poll every export until none is PENDING/RUNNING; returns the seconds it took and the final statuses."""
    started = time.perf_counter()
    pending = {refs[0]: key[0] for key, refs in created.items()}
    final: dict[str, int] = defaultdict(int)
    while pending and time.perf_counter() - started < timeout:
        for reference_id, user in list(pending.items()):
            status = client.get(
                f"/export/{reference_id}", headers={"Authorization": f"Bearer {tokens[user]}"}
            ).json()
            if status["status"] not in ("PENDING", "RUNNING"):
                final[status["status"]] += 1
                del pending[reference_id]
        time.sleep(1)
    if pending:
        final["UNFINISHED"] = len(pending)
    return time.perf_counter() - started, dict(final)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default=f"http://127.0.0.1:{os.environ.get('API_PORT', 8000)}")
    parser.add_argument("--dagster", default=f"http://127.0.0.1:{os.environ.get('DAGSTER_PORT', 3000)}")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=900,
        help="wait this long for every export to finish (0: don't wait)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed for the date ranges (default: time)"
    )
    args = parser.parse_args()

    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    secret = os.environ.get("JWT_SECRET") or DEV_JWT_SECRET
    # Distinct past ranges per run of the script, so the keys are new and each must run exactly once.
    keys = []
    for i in range(args.keys):
        start = date(2019, 1, 1) + timedelta(days=rng.randrange(0, 1800))
        keys.append((f"demo-user-{1 + i % 10}", start, start + timedelta(days=rng.randrange(1, 365))))
    tokens = {user: issue_token(user, secret=secret) for user in {k[0] for k in keys}}
    plan = [keys[i % len(keys)] for i in range(args.requests)]
    rng.shuffle(plan)

    client = httpx.Client(
        base_url=args.api, timeout=60, limits=httpx.Limits(max_connections=args.concurrency)
    )

    def post(key: tuple[str, date, date]) -> tuple[tuple, int, dict, float]:
        user, start, end = key
        t0 = time.perf_counter()
        response = client.post(
            "/export",
            json={"table_name": "transactions", "date_from": start.isoformat(), "date_to": end.isoformat()},
            headers={"Authorization": f"Bearer {tokens[user]}"},
        )
        body = (
            response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        )
        return key, response.status_code, body, time.perf_counter() - t0

    print(f"seed={seed}: {args.requests} POSTs, {args.concurrency} clients, {args.keys} keys -> {args.api}")
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        results = list(pool.map(post, plan))
    wall = time.perf_counter() - started

    statuses: dict[int, int] = defaultdict(int)
    created: dict[tuple, list[str]] = defaultdict(list)
    for key, status, body, _ in results:
        statuses[status] += 1
        if status == 202:
            created[key].append(body["reference_id"])
    problems = []
    for key, status, body, _ in results:
        owners = created.get(key, [])
        if status >= 500:
            problems.append(f"{status} for {key}")
        elif status == 200 and not ({body.get("reference_id"), body.get("reused_from_ref")} & set(owners)):
            problems.append(f"200 for {key} not tied to its export {owners}: {body}")
    duplicates = {k: v for k, v in created.items() if len(v) != 1}

    get_latencies = []
    for key, refs in list(created.items()):
        t0 = time.perf_counter()
        client.get(
            f"/export/{refs[0]}", headers={"Authorization": f"Bearer {tokens[key[0]]}"}
        ).raise_for_status()
        get_latencies.append(time.perf_counter() - t0)

    drain = _wait_for_all(client, created, tokens, timeout=args.drain_timeout) if args.drain_timeout else None

    post_latencies = [r[3] for r in results]
    query = '{ runsOrError(filter: {tags: [{key: "table_name", value: "transactions"}]}) { ... on Runs { count } } }'
    runs = httpx.post(f"{args.dagster}/graphql", json={"query": query}, timeout=30).json()
    print(f"answers: {dict(sorted(statuses.items()))} in {wall:.1f}s ({args.requests / wall:.0f} req/s)")
    print(
        f"exports created: {sum(len(v) for v in created.values())} for {len(created)} keys "
        f"(keys with != 1 export: {len(duplicates)})"
    )
    print(
        f"POST latency p50={_percentile(post_latencies, 0.5) * 1000:.0f} ms "
        f"p99={_percentile(post_latencies, 0.99) * 1000:.0f} ms mean={statistics.mean(post_latencies) * 1000:.0f} ms"
    )
    print(
        f"GET  latency p50={_percentile(get_latencies, 0.5) * 1000:.0f} ms "
        f"p99={_percentile(get_latencies, 0.99) * 1000:.0f} ms"
    )
    print(f"Dagster runs of transactions exports (all time): {runs['data']['runsOrError'].get('count')}")
    if drain is not None:
        seconds, outcome = drain
        print(f"all {len(created)} exports finished {seconds:.0f}s after the last POST: {outcome}")
    ok = not problems and not duplicates and len(created) == args.keys
    ok = ok and (drain is None or set(drain[1]) == {"COMPLETED"})
    for problem in problems[:20]:
        print("PROBLEM:", problem)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
