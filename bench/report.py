"""Turns the measurements into medians, the printed table and the target checks."""

from __future__ import annotations

from statistics import median
from typing import Any

MB = 1_000_000
GB = 1_000_000_000

# Targets of issue 3: minimum ratio to the single-stream CSV floor, by format and sink (None: either).
RATIO_TARGETS: dict[tuple[str, str | None], float] = {
    ("csv", "null"): 0.95,
    ("csv", "s3"): 0.5,
    ("parquet", None): 0.65,
    ("jsonl", None): 0.45,
    ("csv+gzip", None): 0.85,
}
PARALLEL_TARGET = 1.5  # csv, --parallel 2 --sink null, against the single-stream floor
XLSX_TARGET = 3.0  # against xlsxwriter constant_memory in the same run
RSS_TARGETS_MB = {"csv": 150, "jsonl": 150, "csv+gzip": 150, "jsonl+gzip": 150, "parquet": 300}


def summarize(variant: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds; the ratio is the median of each round's side-by-side engine/floor ratio."""
    name = variant["name"]
    pairs = [r for r in runs if r["variant"] == name]
    floors = [r["floor"] for r in pairs]
    engines = [r["engine"] for r in pairs if "error" not in r["engine"]]
    summary: dict[str, Any] = {"variant": name, "rounds": len(pairs), "rows": variant["rows"]}
    if len(engines) < len(pairs):
        summary["error"] = next(r["engine"]["error"] for r in pairs if "error" in r["engine"])
    if not engines:
        return summary
    csv_bytes = variant["csv_bytes"]
    engine_wall = median(e["wall_s"] for e in engines)
    floor_wall = median(f["wall_s"] for f in floors)
    summary.update(
        rows=engines[0]["rows"],
        output_mb=engines[0]["bytes"] / MB,
        floor_rows_s=variant["rows"] / floor_wall,
        floor_mb_s=csv_bytes / MB / floor_wall,
        engine_rows_s=engines[0]["rows"] / engine_wall,
        engine_mb_s=engines[0]["bytes"] / MB / engine_wall,
        engine_wall_s=engine_wall,
        floor_wall_s=floor_wall,
        ratio=median(
            r["floor"]["wall_s"] / r["engine"]["wall_s"] for r in pairs if "error" not in r["engine"]
        ),
        peak_rss_mb=max(e["peak_rss_mb"] for e in engines),
        rss_start_mb=median(e["rss_start_mb"] for e in engines),
        cpu_s=median(e["cpu_s"] for e in engines),
        cpu_s_per_csv_gb=median(e["cpu_s"] for e in engines) / (csv_bytes / GB),
        pg_cpu_s=median(r["engine_servers"]["postgres_cpu_s"] for r in pairs),
        s3_cpu_s=median(r["engine_servers"]["s3_cpu_s"] for r in pairs),
        floor_pg_cpu_s=median(r["floor_servers"]["postgres_cpu_s"] for r in pairs),
    )
    baselines = [r["baseline"] for r in pairs if r.get("baseline") and "error" not in r["baseline"]]
    failed = [r["baseline"]["error"] for r in pairs if r.get("baseline") and "error" in r["baseline"]]
    if failed:
        summary["baseline_error"] = failed[0]
    if baselines:
        base_wall = median(b["wall_s"] for b in baselines)
        summary["baseline_rows_s"] = baselines[0]["rows"] / base_wall
        summary["ratio_to_baseline"] = median(
            r["baseline"]["wall_s"] / r["engine"]["wall_s"] * r["engine"]["rows"] / r["baseline"]["rows"]
            for r in pairs
            if r.get("baseline") and "error" not in r["baseline"] and "error" not in r["engine"]
        )
    return summary


def table(summaries: list[dict[str, Any]]) -> str:
    head = (
        "| format | rows | output MB | floor rows/s | engine rows/s | engine MB/s | ratio to floor "
        "| peak RSS MB (start) | our CPU s/GB | PG CPU s | S3 server CPU s |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summaries:
        if "ratio" not in s:
            lines.append(f"| {s['variant']} | {s['rows']:,} | failed: {s.get('error', '?')} |" + " |" * 8)
            continue
        extra = (
            f" ({s['ratio_to_baseline']:.1f}× xlsxwriter {s['baseline_rows_s']:,.0f} rows/s)"
            if "ratio_to_baseline" in s
            else ""
        )
        lines.append(
            f"| {s['variant']} | {s['rows']:,} | {s['output_mb']:,.0f} | {s['floor_rows_s']:,.0f} "
            f"| {s['engine_rows_s']:,.0f}{extra} | {s['engine_mb_s']:.1f} | **{s['ratio']:.2f}** "
            f"| {s['peak_rss_mb']:.0f} ({s['rss_start_mb']:.0f}) | {s['cpu_s_per_csv_gb']:.1f} "
            f"| {s['pg_cpu_s']:.1f} | {s['s3_cpu_s']:.1f} |"
        )
    return "\n".join(lines)


def target_checks(summaries: list[dict[str, Any]], sink: str) -> list[str]:
    lines = []
    for s in summaries:
        if "ratio" not in s:
            lines.append(f"FAIL  {s['variant']}: export failed")
            continue
        name = s["variant"]
        base = name.split(" x")[0]
        if name.startswith("csv x") and sink == "null":
            lines.append(_check(f"{name} (null sink) vs single-stream floor", s["ratio"], PARALLEL_TARGET))
        target = RATIO_TARGETS.get((base, sink), RATIO_TARGETS.get((base, None)))
        if target is not None and not name.startswith("csv x"):
            lines.append(_check(f"{name} ({sink} sink) vs floor", s["ratio"], target))
        if "baseline_error" in s:
            lines.append(f"FAIL  {name}: the xlsxwriter reference failed: {s['baseline_error']}")
        if "ratio_to_baseline" in s:
            lines.append(_check(f"{name} vs xlsxwriter constant_memory", s["ratio_to_baseline"], XLSX_TARGET))
        if base in RSS_TARGETS_MB:
            limit = RSS_TARGETS_MB[base]
            ok = s["peak_rss_mb"] <= limit
            lines.append(
                f"{'PASS' if ok else 'FAIL'}  {name} peak RSS {s['peak_rss_mb']:.0f} MB (limit {limit} MB)"
            )
    return lines


def _check(label: str, value: float, target: float) -> str:
    return f"{'PASS' if value >= target else 'FAIL'}  {label}: {value:.2f}× (target ≥ {target}×)"
