"""CSV: PostgreSQL's own COPY produces the bytes; no Python in the per-row loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from export_engine.core.query import copy_csv

if TYPE_CHECKING:
    from psycopg2 import sql

    from export_engine.streaming.rows import RowSource


def write_csv(source: RowSource, select: sql.Composable, params: dict[str, Any], sink: Any) -> int:
    return source.stream_copy(copy_csv(select), params, sink)
