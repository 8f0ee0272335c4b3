"""The one typed settings object, read from the environment only.

A `.env` file is not read here on purpose: docker compose owns `.env`, and a secret in it must not
silently change what `make run` and the tests see.

Both the gateway and the Dagster run processes read it; Dagster resources are built from it
in `definitions.py` at run time, never at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-secret-change-me-please-0123456789"
# Three part buffers per export: 6 MiB parts peak 6 MB lower than 8 MiB ones, and were as fast to
# the local S3 server (bench/README.md, "6 MiB vs 8 MiB parts"); raise it for high-latency stores.
DEFAULT_PART_SIZE_MB = 6


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    environment: str = Field("development", description="`development` allows the dev JWT secret")

    # Databases
    database_url: str = Field(..., description="export service DB (SQLAlchemy URL)")
    source_database_url: str = Field(..., description="transactions DB the exports read (libpq URL)")

    # Object storage
    s3_endpoint_url: str | None = Field(None, description="unset for AWS; http://host:port for MinIO/moto")
    s3_bucket: str = "exports"
    s3_region: str = "us-east-1"
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    presign_ttl_seconds: int = Field(24 * 3600, gt=0, le=7 * 24 * 3600)
    multipart_part_size_mb: int = Field(DEFAULT_PART_SIZE_MB, ge=5, le=512)
    export_parallel_streams: int = Field(
        2,
        ge=1,
        le=16,
        description="COPY streams per CSV / JSON lines export (date slices, stitched in order)",
    )

    # Dagster
    dagster_host: str = "127.0.0.1"
    dagster_port: int = 3000
    dagster_submit_timeout_seconds: float = 10.0
    stream_max_rows: int = Field(
        10_000, ge=1, le=1_000_000, description="the most rows `POST /export/stream` answers synchronously"
    )
    stream_max_concurrent: int = Field(
        4, ge=1, le=64, description="synchronous streams at once per gateway; one more is a 429"
    )
    export_max_runtime_seconds: int = Field(6 * 3600, gt=0, description="an export running longer fails")
    retention_hours: int = Field(24, gt=0, description="finished files are deleted after this long")
    heartbeat_timeout_seconds: int = Field(
        30, ge=10, description="no heartbeat this long: the worker is gone"
    )

    # Gateway
    jwt_secret: str = Field(DEV_JWT_SECRET, min_length=32, description="HS256 key; at least 32 characters")
    jwt_algorithm: str = "HS256"
    business_timezone: str = Field("UTC", description="'today' for the dedup rule is computed here")
    log_level: str = "INFO"
    catalog_path: Path = Field(Path(__file__).with_name("catalog.yaml"))

    @property
    def using_dev_secret(self) -> bool:
        return self.jwt_secret == DEV_JWT_SECRET

    def check_secrets(self) -> None:
        """Refuse to start outside development with the published dev secret."""
        if self.using_dev_secret and self.environment != "development":
            raise RuntimeError("JWT_SECRET must be set outside development")


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]
