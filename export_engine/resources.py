"""The three external systems an export touches, each behind a few domain-named methods.

Ops and the gateway never build psycopg2 or boto3 clients themselves; they get these resources,
built from the one `Settings` object at run time (`from_settings`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import boto3
import dagster as dg
import psycopg2
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from psycopg2 import sql

from export_engine.db.repository import ExportRepository
from export_engine.db.session import session_factory
from export_engine.settings import Settings
from export_engine.streaming import MIB, MultipartUploadStream

_COPY_READ_SIZE = 1 * MIB


class SourceDatabaseResource(dg.ConfigurableResource):
    """The transactions DB, always read-only: every session starts with `default_transaction_read_only`."""

    dsn: str
    statement_timeout_ms: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceDatabaseResource:
        return cls(dsn=settings.source_database_url)

    @contextmanager
    def connect(self) -> Iterator[Any]:
        options = f"-c default_transaction_read_only=on -c statement_timeout={self.statement_timeout_ms}"
        conn = psycopg2.connect(self.dsn, options=options, application_name="export-engine-run", connect_timeout=10)
        try:
            yield conn
        finally:
            conn.close()

    def stream_copy(self, copy_sql: sql.Composable, params: dict[str, Any], sink: Any) -> int:
        """Run `COPY (...) TO STDOUT` into `sink.write`; returns the exact row count from the server."""
        with self.connect() as conn, conn.cursor() as cur:
            statement = cur.mogrify(copy_sql, params)  # COPY takes no server-side parameters
            cur.copy_expert(statement, sink, size=_COPY_READ_SIZE)
            return cur.rowcount


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
    part_size_mb: int = 16

    @classmethod
    def from_settings(cls, settings: Settings) -> S3StorageResource:
        return cls(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=settings.aws_secret_access_key,
            part_size_mb=settings.multipart_part_size_mb,
        )

    @property
    def client(self) -> Any:
        return _s3_client(self.endpoint_url, self.region, self.access_key_id, self.secret_access_key)

    def start_upload(self, key: str, *, content_type: str, filename: str) -> MultipartUploadStream:
        return MultipartUploadStream(
            self.client,
            self.bucket,
            key,
            part_size=self.part_size_mb * MIB,
            content_type=content_type,
            content_disposition=_attachment(filename),
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

    def pending_uploads(self, prefix: str = "") -> list[dict[str, Any]]:
        response = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return response.get("Uploads", [])

    def abort_pending_uploads(self, key: str) -> int:
        """Abort uploads of `key` left by a killed run worker; returns how many there were."""
        stale = [u for u in self.pending_uploads(prefix=key) if u["Key"] == key]
        for upload in stale:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])
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
