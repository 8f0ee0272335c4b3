"""The one typed settings object, read from the environment only.

A `.env` file is not read here on purpose: docker compose owns `.env`, and a secret in it must not
silently change what `make run` and the tests see.

Both the gateway and the Dagster run processes read it; Dagster resources are built from it
in `definitions.py` at run time, never at import time.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-secret-change-me-please-0123456789"
# Three part buffers per export: 6 MiB parts peak 6 MB lower than 8 MiB ones, and were as fast to
# the local S3 server (bench/README.md, "6 MiB vs 8 MiB parts"); raise it for high-latency stores.
DEFAULT_PART_SIZE_MB = 6


JwtAlgorithm = Literal["HS256", "HS384", "HS512", "RS256", "ES256"]
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")


class Settings(BaseSettings):
    # hide_input_in_errors: a rejected value (a short JWT_SECRET, a URL with a password) is not echoed
    # into the validation error, which ends up on stderr.
    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    environment: str = Field(
        "production",
        description="only `development` (`make run`, the tests) accepts the published dev JWT secret",
    )

    # Databases
    # repr=False: the URLs carry passwords; they never appear in repr(Settings) or a log line.
    database_url: str = Field(..., repr=False, description="export service DB (SQLAlchemy URL)")
    source_database_url: str = Field(
        ..., repr=False, description="transactions DB the exports read (libpq URL)"
    )

    # Object storage
    s3_endpoint_url: str | None = Field(None, description="unset for AWS; http://host:port for MinIO/moto")
    s3_public_endpoint_url: str | None = Field(
        None,
        description="where users reach S3, when not at S3_ENDPOINT_URL (download links are signed for it)",
    )
    s3_bucket: str = "exports"
    s3_region: str = "us-east-1"
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
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
    stream_max_seconds: int = Field(
        300, gt=0, description="a synchronous stream still unread after this is broken off (slow readers)"
    )
    pdf_page_size: Literal["A4", "Letter"] = Field("A4", description="paper size of PDF statements")
    export_max_runtime_seconds: int = Field(6 * 3600, gt=0, description="an export running longer fails")
    retention_hours: int = Field(24, gt=0, description="finished files are deleted after this long")
    run_history_days: float = Field(
        7, gt=0, description="housekeeping runs (retention, history) stay in Dagster this long"
    )
    failed_run_history_days: float = Field(
        30, gt=0, description="a FAILED export's Dagster runs stay this long, for operators to read why"
    )
    export_audit_days: float = Field(
        90,
        gt=0,
        description="finished export rows (EXPIRED, CANCELED, FAILED) and their events are kept this long",
    )
    heartbeat_timeout_seconds: int = Field(
        30, ge=10, description="no heartbeat this long: the worker is gone"
    )
    run_retry_grace_seconds: int = Field(
        60,
        ge=5,
        description="a run retry Dagster promised and did not launch this long after the failure is "
        "submitted by the reconciler instead",
    )
    export_queue_timeout_seconds: int = Field(
        2 * 3600, gt=0, description="an export whose run waited in Dagster's queue this long fails"
    )
    settlement_lag_hours: float = Field(
        24,
        ge=0,
        description="rows still change this long after their period ends (pending -> posted): "
        "only ranges older than this are final and reused",
    )
    reuse_min_life_seconds: int = Field(
        3600, ge=0, description="a finished file with less life left than this is not reused"
    )

    # Run workers (Celery): each Dagster run is a task in a long-lived worker process
    celery_broker_url: str = Field(
        "redis://127.0.0.1:6379/0", description="broker the daemon sends runs to and the workers read"
    )
    celery_result_backend: str = Field(
        "redis://127.0.0.1:6379/1",
        description="task states; the daemon's run monitor reads them, so never rpc://",
    )
    celery_queue: str = Field("dagster", description="queue the run launcher sends to and workers consume")
    celery_worker_concurrency: int = Field(2, ge=1, le=64, description="runs at once per worker node")
    owner_run_limit: int = Field(2, ge=1, description="runs of one owner in flight at once (run queue)")
    owner_active_export_limit: int = Field(
        20, ge=1, description="PENDING + RUNNING exports one owner may have; past it POST answers 429"
    )

    # Gateway
    jwt_secret: SecretStr = Field(
        SecretStr(DEV_JWT_SECRET), min_length=32, description="HMAC key (HS*); at least 32 characters"
    )
    jwt_algorithm: JwtAlgorithm = "HS256"
    jwt_public_key: str | None = Field(None, description="PEM public key verifying RS256/ES256 tokens")
    jwt_jwks_url: str | None = Field(
        None, description="the identity provider's JWKS URL (RS256/ES256): keys chosen by the token's kid"
    )
    jwt_audience: str | None = Field(None, description="when set, tokens must carry this `aud`")
    jwt_issuer: str | None = Field(None, description="when set, tokens must carry this `iss`")
    jwt_max_lifetime_seconds: int | None = Field(
        7 * 24 * 3600,
        ge=60,
        description="a token whose `exp` is further away than this is refused (None: no limit)",
    )
    max_request_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="a larger request body is refused with 413 before it is parsed"
    )
    export_max_span_days: int = Field(
        3660, ge=1, description="longest date range one export may cover; a dataset may set its own"
    )
    metrics_cache_seconds: float = Field(
        15, ge=0, description="/metrics reads the export DB at most this often (0: every scrape)"
    )
    internal_port: int | None = Field(
        None, description="when set, /metrics and /readyz are served only on this port, not the public one"
    )
    internal_host: str = Field("127.0.0.1", description="where the internal port listens")
    business_timezone: str = Field("UTC", description="'today' for the dedup rule is computed here")

    # Notifications: webhooks and Telegram (export_engine/notifications/)
    webhook_allowed_networks: str = Field(
        "",
        description="comma-separated CIDRs a webhook URL may resolve into although they are not public "
        "(loopback, private, link-local); empty: public addresses only. `make run` allows loopback",
    )
    webhook_timeout_seconds: float = Field(10, gt=0, le=60, description="one delivery attempt's timeout")
    webhook_retry_window_hours: float = Field(
        24, gt=0, description="a delivery is retried this long; then it fails and its endpoint is failing"
    )
    webhook_retry_base_seconds: float = Field(
        5, gt=0, description="first retry delay; doubles each attempt (±20 % jitter), capped at 1 h"
    )
    webhook_secret_overlap_hours: float = Field(
        24, ge=0, description="after a rotation the old secret also signs deliveries this long"
    )
    telegram_bot_token: SecretStr | None = Field(
        None, description="the bot's token from @BotFather; unset: Telegram notifications are off"
    )
    telegram_api_url: str = Field("https://api.telegram.org", description="the Bot API's base URL")
    telegram_bot_username: str | None = Field(
        None, description="the bot's @username for t.me links; unset: asked once with getMe"
    )
    telegram_webhook_secret: SecretStr | None = Field(
        None,
        description="when set, updates arrive at POST /notifications/telegram/webhook carrying it in "
        "X-Telegram-Bot-Api-Secret-Token; unset: the notification sensor long-polls getUpdates",
    )
    telegram_link_code_ttl_seconds: int = Field(900, ge=60, description="a link code is valid this long")
    log_level: str = "INFO"
    catalog_path: Path = Field(Path(__file__).with_name("catalog.yaml"))

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_bot_token is not None and bool(self.telegram_bot_token.get_secret_value())

    @property
    def lifecycle_expire_days(self) -> int:
        return lifecycle_expire_days(self.retention_hours)

    @property
    def using_dev_secret(self) -> bool:
        return self.jwt_algorithm in HMAC_ALGORITHMS and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET

    @model_validator(mode="after")
    def _jwt_keys_match_algorithm(self) -> Settings:
        if self.jwt_algorithm in HMAC_ALGORITHMS:
            if self.jwt_public_key or self.jwt_jwks_url:
                raise ValueError(
                    f"JWT_ALGORITHM={self.jwt_algorithm} verifies with JWT_SECRET; "
                    "JWT_PUBLIC_KEY and JWT_JWKS_URL need RS256 or ES256"
                )
        elif bool(self.jwt_public_key) == bool(self.jwt_jwks_url):
            raise ValueError(
                f"JWT_ALGORITHM={self.jwt_algorithm} needs exactly one of JWT_PUBLIC_KEY or JWT_JWKS_URL"
            )
        return self

    def check_secrets(self) -> None:
        """Refuse to start outside development with the published dev secret."""
        if self.using_dev_secret and self.environment != "development":
            raise RuntimeError(
                f"JWT_SECRET must be set when ENVIRONMENT={self.environment!r}: the default is the published "
                "development secret (only ENVIRONMENT=development accepts it)"
            )


def lifecycle_expire_days(retention_hours: float) -> int:
    """The bucket's own expiry: a whole day past the retention, so it only ever catches leaks."""
    return math.ceil(retention_hours / 24) + 1


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]
