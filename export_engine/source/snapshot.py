"""One read-only snapshot of the source database: count the rows, then stream exactly those rows.

The synchronous stream (`POST /export/stream`) counts before it answers, so that a request past the
row limit is refused before the first byte, and then streams in the same REPEATABLE READ READ ONLY
transaction: the count and the COPY see the same rows. It implements the `RowSource` protocol, so
the format writers of the asynchronous exports write the stream too (the same bytes for CSV and JSON).
The Arrow formats (Parquet, XLSX, PDF) read through `SourceDatabaseMethods.arrow_batches` on an ADBC
session of their own, which imports this transaction's snapshot (`pg_export_snapshot()`): they too
write exactly the rows that were counted (review 2026-12-07 N6).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from typing import TYPE_CHECKING, Any

from psycopg2 import extensions, sql

if TYPE_CHECKING:
    from export_engine.source.database import SourceDatabaseMethods
    from export_engine.streaming.rows import ArrowRows


def bounded_count(select: sql.Composable, limit: int) -> sql.Composed:
    """The number of rows, counting no further than `limit + 1` (enough to say "more than `limit`")."""
    return sql.SQL("SELECT count(*) FROM ({} LIMIT {}) AS export_rows").format(select, sql.Literal(limit + 1))


class SnapshotSource:
    """Use as a context manager; `cancel()` (from any thread) stops the statement in flight."""

    def __init__(self, source: SourceDatabaseMethods) -> None:
        self._source = source
        self._stack = ExitStack()
        self._conn: Any = None

    def __enter__(self) -> SnapshotSource:
        self._conn = self._stack.enter_context(self._source.connect())
        self._conn.set_session(isolation_level=extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def count(self, select: sql.Composable, params: dict[str, Any], *, limit: int) -> int:
        """Rows the SELECT returns, or `limit + 1` when there are more than `limit`."""
        with self._conn.cursor() as cur:
            cur.execute(bounded_count(select, limit), params)
            return int(cur.fetchone()[0])

    def stream_copy(self, copy_sql: sql.Composable, params: dict[str, Any], sink: Any) -> int:
        with self._conn.cursor() as cur:
            cur.copy_expert(cur.mogrify(copy_sql, params), sink)
            return int(cur.rowcount)

    def arrow_batches(
        self, select: sql.Composable, params: dict[str, Any], *, count: bool = False
    ) -> AbstractContextManager[ArrowRows]:
        return self._source.arrow_batches(select, params, count=count, snapshot=self._exported())

    def _exported(self) -> str:
        """This transaction's snapshot, for another session to import while this one stays open."""
        with self._conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            return str(cur.fetchone()[0])

    def cancel(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.cancel()
