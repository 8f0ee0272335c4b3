"""The three external systems an export touches, as Dagster resources for ops and sensors.

The source DB and the bucket are implemented once, as plain classes (`source/database.py`, `delivery/bucket.py`) that
the gateway uses without Dagster; these resources share their methods and add typed config.
Ops never build psycopg2 or boto3 clients themselves.
"""

from __future__ import annotations

import dagster as dg

from export_engine.db.session import session_factory
from export_engine.delivery.bucket import S3BucketMethods, S3Storage
from export_engine.lifecycle.repository import ExportRepository
from export_engine.settings import DEFAULT_PART_SIZE_MB, Settings
from export_engine.source.database import SourceDatabaseMethods


class SourceDatabaseResource(SourceDatabaseMethods, dg.ConfigurableResource):
    """The transactions DB for ops: the same methods as the gateway's plain `SourceDatabase`."""

    dsn: str
    statement_timeout_ms: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceDatabaseResource:
        return cls(dsn=settings.source_database_url)


class S3StorageResource(S3BucketMethods, dg.ConfigurableResource):
    """The exports bucket for ops and sensors: the same methods as the gateway's plain `S3Storage`."""

    bucket: str
    endpoint_url: str | None = None
    public_endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    part_size_mb: int = DEFAULT_PART_SIZE_MB

    @classmethod
    def from_settings(cls, settings: Settings) -> S3StorageResource:
        return cls(**S3Storage.from_settings(settings).__dict__)


class ExportDbResource(dg.ConfigurableResource):
    """The export service DB, where each export's status lives."""

    url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ExportDbResource:
        return cls(url=settings.database_url)

    def repository(self) -> ExportRepository:
        return ExportRepository(session_factory(self.url))
