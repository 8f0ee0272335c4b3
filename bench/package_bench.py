"""`make bench-packages`: a package (streamed ZIP) next to the single-dataset export of the same rows.

    python -m bench.package_bench [--sizes 1000000,10000000] [--formats csv,jsonl] [--rounds 2]
                                  [--sink null|s3] [--json-out bench/results-packages.json]

For each size N, the bench owner's range holding N transactions is exported twice per round, each in
a fresh process (`bench.measure`): `run_export` of `transactions` (the single-dataset export), and
`run_package` of accounts + tags + transactions over the same range (the package: the transactions
entry is the same rows and bytes, plus two small entity entries, the manifest and the ZIP framing).
Order alternates per round. Reported: wall time, rows/s, the package/single throughput ratio (target
≥ 0.8), and each process's peak RSS (target: flat from 1M to 10M, ≤ 200 MB for CSV and JSON lines).
`--sink null` (default) uses the engine's real multipart stream with a client that discards parts, so
10M rows do not land in the local S3 server's memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from bench import dataset
from bench.export_bench import _EXTERNAL
from bench.runner import Bench
from devstack.processes import PROJECT_ROOT
from devstack.stack import LocalStack, Ports

PACKAGE_DATASETS = ["accounts", "tags", "transactions"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in split(s)], default=[1_000_000, 10_000_000])
    parser.add_argument("--formats", type=split, default=["csv", "jsonl"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sink", choices=("s3", "null"), default="null")
    parser.add_argument("--part-size-mb", type=int, default=None)
    parser.add_argument("--json-out", type=Path, default=PROJECT_ROOT / "bench" / "results-packages.json")
    parser.add_argument("--home", type=Path, default=PROJECT_ROOT / ".local" / "bench")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    environ = {k: v for k, v in os.environ.items() if k not in _EXTERNAL}
    stack = LocalStack(args.home, Ports.free(), environ=environ)
    try:
        print(f"starting PostgreSQL and the S3 server under {args.home} ...", flush=True)
        env = stack.start_storage()
        dataset.ensure_rows(env["SOURCE_ADMIN_URL"], max(args.sizes))
        return run(Bench(stack, args), args)
    finally:
        stack.stop()


def run(bench: Bench, args: argparse.Namespace) -> int:
    admin = bench.env["SOURCE_ADMIN_URL"]
    runs: list[dict[str, Any]] = []
    for size in args.sizes:
        rng = dataset.range_with_rows(admin, size)
        print(f"{size:,}: range {rng.date_from}..{rng.date_to} holds {rng.rows:,} transactions", flush=True)
        for fmt in args.formats:
            common = {
                "sink": args.sink,
                "owner": dataset.OWNER,
                "format": fmt,
                "date_from": rng.date_from.isoformat(),
                "date_to": rng.date_to.isoformat(),
            }
            single_job = {
                "kind": "engine",
                "table": dataset.TABLE,
                "compression": None,
                "parallel": 1,
                **common,
            }
            package_job = {"kind": "package", "datasets": PACKAGE_DATASETS, **common}
            for number in range(args.rounds):
                steps = [("single", single_job), ("package", package_job)]
                if number % 2:
                    steps.reverse()
                record: dict[str, Any] = {"size": size, "rows": rng.rows, "format": fmt, "round": number}
                for name, job in steps:
                    record[name] = bench.child(job)
                    record[f"{name}_load_1m"] = os.getloadavg()[0]
                    bench.delete(record[name].get("s3_key"))
                runs.append(record)
                _save(args.json_out, {"partial": True, "runs": runs})
                print("  " + _line(record), flush=True)
    summaries = _summaries(runs)
    print()
    print(_table(summaries))
    _save(
        args.json_out,
        {
            "command": "python -m bench.package_bench " + " ".join(sys.argv[1:]),
            "cpus": os.cpu_count(),
            "summaries": summaries,
            "runs": runs,
        },
    )
    print(f"\nresults: {args.json_out}")
    return 0


def _line(record: dict[str, Any]) -> str:
    parts = [f"{record['format']:>5} {record['size']:>11,} round {record['round'] + 1}:"]
    for name in ("single", "package"):
        r = record[name]
        parts.append(
            f"{name} {r['wall_s']:.1f}s {r['peak_rss_mb']:.0f}MB"
            if "wall_s" in r
            else f"{name} ERROR {r['error']}"
        )
    return "  ".join(parts)


def _summaries(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key in sorted({(r["size"], r["format"]) for r in runs}):
        mine = [
            r
            for r in runs
            if (r["size"], r["format"]) == key and "wall_s" in r["single"] and "wall_s" in r["package"]
        ]
        if not mine:
            continue
        ratios = [r["single"]["wall_s"] / r["package"]["wall_s"] for r in mine]
        out.append(
            {
                "size": key[0],
                "format": key[1],
                "rows": mine[0]["rows"],
                "package_rows": mine[0]["package"]["rows"],
                "single_wall_s": statistics.median(r["single"]["wall_s"] for r in mine),
                "package_wall_s": statistics.median(r["package"]["wall_s"] for r in mine),
                "throughput_ratio": statistics.median(ratios),
                "single_peak_rss_mb": max(r["single"]["peak_rss_mb"] for r in mine),
                "package_peak_rss_mb": max(r["package"]["peak_rss_mb"] for r in mine),
                "package_bytes": mine[0]["package"]["bytes"],
                "single_bytes": mine[0]["single"]["bytes"],
                "load_1m": [round(r["package_load_1m"], 1) for r in mine],
            }
        )
    return out


def _table(summaries: list[dict[str, Any]]) -> str:
    lines = [
        "| rows | format | single export | package (3 datasets) | package/single throughput | peak RSS single / package | load |",
        "| ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in summaries:
        lines.append(
            f"| {s['rows']:,} | {s['format']} | {s['single_wall_s']:.1f} s | {s['package_wall_s']:.1f} s "
            f"| {s['throughput_ratio']:.2f}× | {s['single_peak_rss_mb']:.0f} / {s['package_peak_rss_mb']:.0f} MB "
            f"| {', '.join(str(x) for x in s['load_1m'])} |"
        )
    return "\n".join(lines)


def _save(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
