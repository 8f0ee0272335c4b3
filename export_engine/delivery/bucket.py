"""The exports bucket as a plain class: the gateway uses it without importing Dagster, and the
engine's `S3StorageResource` shares every method through `S3BucketMethods`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from export_engine.delivery.multipart import MultipartUploadStream
from export_engine.settings import DEFAULT_PART_SIZE_MB, Settings
from export_engine.streaming import MIB


@lru_cache(maxsize=8)
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


class S3BucketMethods:
    """Pipelined multipart uploads in, SigV4 presigned GETs out; needs `bucket`, `endpoint_url`,
    `public_endpoint_url`, `region`, `access_key_id`, `secret_access_key` and `part_size_mb`.

    A SigV4 signature covers the host, so links are signed for the host users reach
    (`public_endpoint_url`), which need not be the one the services use (`endpoint_url`)."""

    bucket: str
    endpoint_url: str | None
    public_endpoint_url: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None
    part_size_mb: int

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
        signer = _s3_client(
            self.public_endpoint_url or self.endpoint_url,
            self.region,
            self.access_key_id,
            self.secret_access_key,
        )
        return signer.generate_presigned_url(
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


@dataclass(frozen=True)
class S3Storage(S3BucketMethods):
    bucket: str
    endpoint_url: str | None = None
    public_endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    part_size_mb: int = DEFAULT_PART_SIZE_MB

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        secret = settings.aws_secret_access_key
        return cls(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url or None,
            public_endpoint_url=settings.s3_public_endpoint_url or None,
            region=settings.s3_region,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
            part_size_mb=settings.multipart_part_size_mb,
        )


def _attachment(filename: str) -> str:
    return f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"
