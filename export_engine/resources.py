"""The three external systems an export touches, each behind a few domain-named methods.

Ops and the gateway never build psycopg2 or boto3 clients themselves; they get these resources,
built from the one `Settings` object at run time (`from_settings`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import boto3
import dagster as dg
import psycopg2
import psycopg2.errors
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from psycopg2 import sql
from psycopg2.extensions import make_dsn

from export_engine.db.repository import ExportRepository
from export_engine.db.session import session_factory
from export_engine.formats import ArrowRows
from export_engine.query import count_query, limit_zero, with_columns_as_text
from export_engine.settings import DEFAULT_PART_SIZE_MB, Settings
from export_engine.streaming import MIB, MultipartUploadStream

if TYPE_CHECKING:
    import pyarrow as pa



class SourceDatabaseResource(dg.ConfigurableResource):
    """The transactions DB, always read-only: every session starts with `default_transaction_read_only`.

    Two ways to read: `stream_copy` (psycopg2, COPY text/CSV straight into a sink) and `arrow_batches`
    (ADBC, binary COPY decoded into Arrow record batches). Both use the same read-only session options.
    """

    dsn: str
    statement_timeout_ms: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceDatabaseResource:
        return cls(dsn=settings.source_database_url)

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
        self, select: sql.Composable, params: dict[str, Any], *, count: bool = False
    ) -> Iterator[ArrowRows]:
        """The SELECT's rows as Arrow record batches, read in one read-only REPEATABLE READ transaction.

        With `count=True` the rows are counted first in the same snapshot (`rows.total`), so the count
        is exact for the batches that follow. Driver errors are raised as the psycopg2 error of the
        same SQLSTATE, so `engine.is_permanent` classifies both read paths alike.
        """
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


@lru_cache(maxsize=4)
def _s3_client(endpoint_url: str | None, region: str, access_key: str | None, secret_key: str | None) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=BotoConfig(
            signature_version="s3v4",  # SigV2 presigned URLs are rejected by modern S3
            s3={"addressing_style": "path"} if endpoint_url else {},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=20,
        ),
    )


class S3StorageResource(dg.ConfigurableResource):
    """The exports bucket: pipelined multipart uploads in, SigV4 presigned GETs out."""

    bucket: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    part_size_mb: int = DEFAULT_PART_SIZE_MB

    @classmethod
    def from_settings(cls, settings: Settings) -> S3StorageResource:
        return cls(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=(
                settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
            ),
            part_size_mb=settings.multipart_part_size_mb,
        )

    @property
    def client(self) -> Any:
        return _s3_client(self.endpoint_url, self.region, self.access_key_id, self.secret_access_key)

    def start_upload(
        self, key: str, *, content_type: str, filename: str, stop: threading.Event | None = None
    ) -> MultipartUploadStream:
        return MultipartUploadStream(
            self.client,
            self.bucket,
            key,
            part_size=self.part_size_mb * MIB,
            content_type=content_type,
            content_disposition=_attachment(filename),
            stop=stop,
        )

    def presign(self, key: str, *, ttl_seconds: int, filename: str, content_type: str) -> str:
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": _attachment(filename),
                "ResponseContentType": content_type,
            },
            ExpiresIn=ttl_seconds,
        )

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def apply_lifecycle(self, *, expire_days: int, prefix: str = "exports/") -> None:
        """Backstop for retention: the bucket itself expires exports and abandoned multipart uploads.

        `Settings.lifecycle_expire_days` is a day past `RETENTION_HOURS`, so it never cuts a promised life."""
        self.client.put_bucket_lifecycle_configuration(
            Bucket=self.bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "expire-exports",
                        "Filter": {"Prefix": prefix},
                        "Status": "Enabled",
                        "Expiration": {"Days": expire_days},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": expire_days},
                    }
                ]
            },
        )

    def pending_uploads(self, prefix: str = "") -> list[dict[str, Any]]:
        """Multipart uploads started and neither completed nor aborted, every page of them."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return [upload for page in pages for upload in page.get("Uploads", [])]

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def abort_uploads_under(self, prefix: str) -> int:
        """Abort every pending upload whose key starts with `prefix` (every run of one export)."""
        stale = self.pending_uploads(prefix=prefix)
        for upload in stale:
            self.abort_upload(upload["Key"], upload["UploadId"])
        return len(stale)

    def objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Every object under `prefix` (`Key`, `LastModified`, `Size`), page by page."""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def abort_pending_uploads(self, key: str) -> int:
        """Abort uploads of `key` left by a killed run worker; returns how many there were."""
        stale = [u for u in self.pending_uploads(prefix=key) if u["Key"] == key]
        for upload in stale:
            self.abort_upload(key, upload["UploadId"])
        return len(stale)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


def _attachment(filename: str) -> str:
    return f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"


class ExportDbResource(dg.ConfigurableResource):
    """The export service DB, where each export's status lives."""

    url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ExportDbResource:
        return cls(url=settings.database_url)

    def repository(self) -> ExportRepository:
        return ExportRepository(session_factory(self.url))
