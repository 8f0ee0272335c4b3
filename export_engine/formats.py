"""Output formats: how each one is written, and its file extension and Content-Type.

A writer streams the result of an already-composed SELECT from the source database into a binary
sink (anything with `write(bytes)`) and returns the exact number of data rows. CSV needs no Python
in the loop: PostgreSQL's own COPY produces the bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from psycopg2 import sql

from export_engine.query import copy_csv


class RowSource(Protocol):
    """What a writer needs from the source database (see `SourceDatabaseResource`)."""

    def stream_copy(self, copy_sql: sql.Composable, params: dict[str, Any], sink: Any) -> int: ...


Writer = Callable[[RowSource, sql.Composable, dict[str, Any], Any], int]


def write_csv(source: RowSource, select: sql.Composable, params: dict[str, Any], sink: Any) -> int:
    return source.stream_copy(copy_csv(select), params, sink)


@dataclass(frozen=True)
class FormatSpec:
    extension: str
    content_type: str
    write: Writer


FORMATS: dict[str, FormatSpec] = {
    "csv": FormatSpec(".csv", "text/csv; charset=utf-8", write_csv),
}
