"""Small helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import io
from typing import Any

import psycopg2

from export_engine.core.catalog import Dataset
from export_engine.core.export_spec import ExportSpec
from export_engine.core.query import copy_csv, select_query
from export_engine.db.models import Export


def expected_csv(admin_url: str, dataset: Dataset, spec: ExportSpec) -> bytes:
    """What PostgreSQL itself produces for the export's query: the reference every export is compared with."""
    select, params = select_query(dataset, spec)
    sink = io.BytesIO()
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.copy_expert(cur.mogrify(copy_csv(select), params), sink)
    return sink.getvalue()


def source_rows(admin_url: str, owner: str, date_from: Any, date_to: Any) -> list[tuple]:
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id, user_id FROM transactions WHERE user_id = %s AND txn_date BETWEEN %s AND %s ORDER BY txn_date, id",
            (owner, date_from, date_to),
        )
        return cur.fetchall()


def export_row(spec: ExportSpec, reference_id: str, **columns: Any) -> Export:
    """An `exports` row for `spec`, as the gateway would insert it; `columns` set the rest."""
    return Export(
        reference_id=reference_id,
        dedup_key=spec.dedup_key,
        owner=spec.owner,
        table_name=spec.table_name,
        date_from=spec.date_from,
        date_to=spec.date_to,
        format=spec.format,
        params=spec.canonical(),
        **columns,
    )


class NoDagster:
    """A launcher for gateway tests without Dagster: exports are committed and handed over; none runs."""

    def submit(self, reference_id: str, spec: ExportSpec, *, look_first: bool = True) -> str:
        return f"run-{reference_id}"

    def terminate(self, run_id: str) -> None:
        pass
