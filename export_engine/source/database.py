"""The transactions DB, read-only, as a plain class: the gateway's synchronous streams use it without
importing Dagster, and the engine's `SourceDatabaseResource` shares every method through
`SourceDatabaseMethods`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import make_dsn

from export_engine.core.query import count_query, limit_zero, with_columns_as_text
from export_engine.settings import Settings
from export_engine.streaming import MIB
from export_engine.streaming.rows import ArrowRows

if TYPE_CHECKING:
    import pyarrow as pa


class SourceDatabaseMethods:
    """The transactions DB, always read-only: every session starts with `default_transaction_read_only`.

    Two ways to read: `stream_copy` (psycopg2, COPY text/CSV straight into a sink) and `arrow_batches`
    (ADBC, binary COPY decoded into Arrow record batches). Both use the same read-only session options.
    """

    dsn: str
    statement_timeout_ms: int

    @property
    def _options(self) -> str:
        """Read-only, and no parallel query plans: an export streams in index order, and a parallel
        plan has PostgreSQL scan the whole table on three backends and sort before the first byte
        (the planner chose one for every ~500k-row date slice of a 10M-row table), taking the
        workers the transactions workload needs. Our own parallelism is the date slices."""
        return (
            "-c default_transaction_read_only=on -c max_parallel_workers_per_gather=0"
            f" -c statement_timeout={self.statement_timeout_ms}"
        )

    @property
    def _connection_parameters(self) -> dict[str, Any]:
        """libpq parameters of every session, psycopg2's and ADBC's alike.

        The keepalives make a source that vanished without a FIN or RST (a failover, a NAT that
        dropped the connection's state) fail the COPY within a minute, so the run retries; libpq's
        default leaves it to Linux, whose first probe comes after two hours.
        """
        return {
            "options": self._options,
            "application_name": _APPLICATION,
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }

    @contextmanager
    def connect(self) -> Iterator[Any]:
        conn = psycopg2.connect(self.dsn, **self._connection_parameters)
        try:
            yield conn
        finally:
            conn.close()

    def stream_copy(self, copy_sql: sql.Composable, params: dict[str, Any], sink: Any) -> int:
        """Run `COPY (...) TO STDOUT` into `sink.write`; returns the exact row count from the server."""
        with self.connect() as conn, conn.cursor() as cur:
            statement = cur.mogrify(copy_sql, params)  # COPY takes no server-side parameters
            cur.copy_expert(statement, sink)  # `size` is only for COPY FROM
            return cur.rowcount

    @contextmanager
    def arrow_batches(
        self,
        select: sql.Composable,
        params: dict[str, Any],
        *,
        count: bool = False,
        snapshot: str | None = None,
    ) -> Iterator[ArrowRows]:
        """The SELECT's rows as Arrow record batches, read in one read-only REPEATABLE READ transaction.

        With `count=True` the rows are counted first in the same snapshot (`rows.total`), so the count
        is exact for the batches that follow. `snapshot` (from `pg_export_snapshot()` in a transaction
        still open) makes the read see exactly what that transaction sees. Driver errors are raised as
        the psycopg2 error of the same SQLSTATE, so `runs.op_lifecycle.is_permanent` classifies both
        read paths alike.
        """
        if snapshot is not None and not _SNAPSHOT_ID.fullmatch(snapshot):
            raise ValueError(f"not a snapshot id from pg_export_snapshot(): {snapshot!r}")
        import adbc_driver_postgresql.dbapi as adbc_postgresql  # ~56 MB with pyarrow: only for Arrow formats
        import pyarrow as pa

        from export_engine.writers.arrow_types import decimal_type

        with self.connect() as conn, conn.cursor() as cur:  # psycopg2 binds the values, as for COPY
            cur.execute(limit_zero(select), params)
            columns = [column.name for column in cur.description]
            decimals = {
                column.name: decimal_type(column.precision, column.scale)
                for column in cur.description
                if column.type_code == _NUMERIC_OID
            }
            reading = with_columns_as_text(select, columns, set(decimals)) if decimals else select
            statement = cur.mogrify(reading, params).decode()
            counting = cur.mogrify(count_query(select), params).decode() if count else None
        conninfo = make_dsn(self.dsn, **self._connection_parameters)
        with _as_psycopg2_errors():
            conn = adbc_postgresql.connect(conninfo)
        try:
            cur = conn.cursor()
            try:
                with _as_psycopg2_errors():
                    conn.adbc_connection.set_options(**{_ISOLATION_LEVEL: _REPEATABLE_READ})
                    cur.adbc_statement.set_options(**{_BATCH_SIZE_HINT: str(_ARROW_BATCH_BYTES)})
                    if snapshot is not None:  # the transaction's first statement, as PostgreSQL requires
                        cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                    total = None
                    if counting is not None:
                        cur.execute(counting)
                        total = int(cur.fetchone()[0])
                    cur.execute(statement)
                    reader = cur.fetch_record_batch()
                schema = _with_decimals(reader.schema, decimals)
                batches = _translated(reader, schema if decimals else None)
                yield ArrowRows(pa.RecordBatchReader.from_batches(schema, batches), total)
            finally:
                cur.close()
        finally:
            conn.close()


_APPLICATION = "export-engine-run"
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")
_NUMERIC_OID = 1700
_ARROW_BATCH_BYTES = 8 * MIB  # per Arrow batch and Parquet row group; 16 MiB measured ~25 MB more RSS
_BATCH_SIZE_HINT = "adbc.postgresql.batch_size_hint_bytes"  # adbc_driver_postgresql.StatementOptions
_ISOLATION_LEVEL = "adbc.connection.transaction.isolation_level"  # adbc_driver_manager.ConnectionOptions
_REPEATABLE_READ = "adbc.connection.transaction.isolation.repeatable_read"


@contextmanager
def _as_psycopg2_errors() -> Iterator[None]:
    """ADBC reports the server's SQLSTATE; re-raise as psycopg2's class for it (e.g. UndefinedTable)."""
    import adbc_driver_manager

    try:
        yield
    except adbc_driver_manager.Error as exc:
        try:
            error_class = psycopg2.errors.lookup(exc.sqlstate) if exc.sqlstate else psycopg2.DatabaseError
        except KeyError:
            error_class = psycopg2.DatabaseError
        raise error_class(str(exc).strip()) from exc


def _translated(reader: pa.RecordBatchReader, schema: pa.Schema | None) -> Iterator[pa.RecordBatch]:
    """The driver's batches with its errors as psycopg2's, cast to `schema` (numeric text → decimal)."""
    with _as_psycopg2_errors():
        for batch in reader:
            yield batch.cast(schema) if schema is not None else batch


def _with_decimals(schema: pa.Schema, decimals: dict[str, pa.DataType]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(f.name, decimals.get(f.name, f.type)) for f in schema])


@dataclass(frozen=True)
class SourceDatabase(SourceDatabaseMethods):
    dsn: str
    statement_timeout_ms: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceDatabase:
        return cls(dsn=settings.source_database_url)
