"""`--api`: one CSV export of `--rows` rows through the whole product, timed next to the floor.

The gateway, the Dagster webserver and daemon start on free ports over the bench's storage (never
the fixed ports of `make run`); a token for the bench's owner asks `POST /export` (force_refresh,
so a file from an earlier run is not reused), and the export is polled until it is COMPLETED. The
floor runs right before and right after. The time is from the POST to the COMPLETED status, so it
includes Dagster's run launch (a few seconds) and the sensor-free hand-off; `started_at` to
`completed_at` is the run itself.

`--launchers default,celery` repeats it with each run launcher, services restarted in between, in the
same process over the same data: a run in a fresh process per export against a run in a long-lived
Celery worker, side by side (the last line is their ratio).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from statistics import median
from typing import Any

import httpx

from bench import dataset
from bench.runner import Bench, statements

_DONE = ("COMPLETED", "FAILED", "CANCELED", "EXPIRED", "SUPERSEDED")


def run_api_export(bench: Bench, args: argparse.Namespace) -> int:
    admin = bench.env["SOURCE_ADMIN_URL"]
    rng = dataset.range_with_rows(admin, args.rows)
    _, floor_sql = statements(bench.env["SOURCE_DATABASE_URL"], {}, rng)
    if args.part_size_mb:  # the run worker reads it from the services' environment
        bench.stack.env["MULTIPART_PART_SIZE_MB"] = str(args.part_size_mb)
    outcomes = {}
    for launcher in args.launchers.split(","):
        print(f"starting the gateway, Dagster and the {launcher} run launcher on free ports ...", flush=True)
        bench.stack.start_services(launcher=launcher)
        try:
            outcomes[launcher] = _one_export(bench, args, rng, floor_sql, launcher)
        finally:
            bench.stack.stop_services()
    if len(outcomes) > 1:
        times = {launcher: o["post_to_completed_s"] for launcher, o in outcomes.items()}
        first, *others = times
        for other in others:
            print(
                f"POST → COMPLETED, {other} ÷ {first}: {times[other]:.1f} s ÷ {times[first]:.1f} s"
                f" = {times[other] / times[first]:.2f}"
            )
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(outcomes, indent=1, default=str))
    print(f"results: {args.json_out}")
    return 0 if all(o["status"] == "COMPLETED" for o in outcomes.values()) else 1


def _one_export(
    bench: Bench, args: argparse.Namespace, rng: Any, floor_sql: str, launcher: str
) -> dict[str, Any]:
    from api.security import issue_token
    from export_engine.settings import DEV_JWT_SECRET

    token = issue_token(
        dataset.OWNER, secret=bench.stack.env.get("JWT_SECRET") or DEV_JWT_SECRET, ttl_seconds=4 * 3600
    )
    headers = {"Authorization": f"Bearer {token}"}
    warm_up = {"table_name": dataset.TABLE, "date_from": rng.date_from.isoformat(), "force_refresh": True}
    warm_up["date_to"] = warm_up["date_from"]  # one day: every process of the launcher has run once
    ref = httpx.post(f"{bench.stack.api_url}/export", json=warm_up, headers=headers, timeout=60).json()
    while (
        httpx.get(f"{bench.stack.api_url}/export/{ref['reference_id']}", headers=headers, timeout=60).json()[
            "status"
        ]
        not in _DONE
    ):
        time.sleep(0.5)
    bench.floor(floor_sql)  # warm-up
    floors = [bench.floor(floor_sql)["wall_s"]]
    body = {
        "table_name": dataset.TABLE,
        "date_from": rng.date_from.isoformat(),
        "date_to": rng.date_to.isoformat(),
        "format": "csv",
        "force_refresh": True,
    }
    started = time.perf_counter()
    created = httpx.post(f"{bench.stack.api_url}/export", json=body, headers=headers, timeout=60)
    created.raise_for_status()
    reference_id = created.json()["reference_id"]
    progress: list[tuple[float, int | None]] = []
    while True:
        export = httpx.get(f"{bench.stack.api_url}/export/{reference_id}", headers=headers, timeout=60).json()
        progress.append((round(time.perf_counter() - started, 1), export.get("rows_written")))
        if export["status"] in _DONE:
            break
        time.sleep(0.5)
    through_api = time.perf_counter() - started
    floors.append(bench.floor(floor_sql)["wall_s"])
    run_s = _seconds(export.get("started_at"), export.get("completed_at"))
    floor = median(floors)
    print(
        f"\n`python -m bench.export_bench --api --rows {args.rows}`, {launcher} run launcher: "
        f"{export['status']}, {export.get('row_count') or 0:,} rows, "
        f"{(export.get('file_size_bytes') or 0) / 1e6:,.0f} MB"
    )
    print("| path | seconds | ratio to floor |\n|---|---|---|")
    print(f"| floor: psql COPY → /dev/null (before, after) | {floors[0]:.1f}, {floors[1]:.1f} | 1.00 |")
    print(
        f"| POST /export → COMPLETED (gateway, Dagster launch, run, S3) | {through_api:.1f} "
        f"| {floor / through_api:.2f} |"
    )
    if run_s:
        print(f"| run started → completed (the op: COPY → S3 object) | {run_s:.1f} | {floor / run_s:.2f} |")
    seen = [rows for _, rows in progress if rows]
    print(
        f"rows_written seen while running: {len(seen)} polls, last {seen[-1] if seen else None}", flush=True
    )
    return {
        "launcher": launcher,
        "rows_requested": rng.rows,
        "status": export["status"],
        "row_count": export.get("row_count"),
        "file_size_bytes": export.get("file_size_bytes"),
        "error": export.get("error"),
        "post_to_completed_s": through_api,
        "run_started_to_completed_s": run_s,
        "floor_s": floors,
        "ratio_post_to_completed": floor / through_api,
        "ratio_run": floor / run_s if run_s else None,
        "progress": progress,
    }


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
