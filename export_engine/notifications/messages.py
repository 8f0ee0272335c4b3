"""The Telegram message of an event, built when it is sent: the link is signed then, for its real life."""

from __future__ import annotations

from datetime import datetime, timedelta

from export_engine.core.catalog import Catalog
from export_engine.core.package_spec import stored_spec
from export_engine.db.events import EXPORT_FAILED
from export_engine.db.models import Export, ExportStatus
from export_engine.delivery.bucket import S3BucketMethods
from export_engine.errors import CatalogError
from export_engine.notifications import telegram

FORMAT_LABELS = {"csv": "CSV", "jsonl": "JSON Lines", "json": "JSON", "parquet": "Parquet", "xlsx": "Excel"}


def telegram_text(
    export: Export,
    event_type: str,
    *,
    catalog: Catalog,
    storage: S3BucketMethods,
    presign_ttl_seconds: int,
    now: datetime,
) -> str | None:
    """The completion or failure message; None when a completion has no file left to link to."""
    name = dataset_name(catalog, export.table_name)
    if event_type == EXPORT_FAILED:
        return telegram.failure_text(dataset_name=name, reason=export.error or "unknown")
    link = download_link(export, storage=storage, presign_ttl_seconds=presign_ttl_seconds, now=now)
    if link is None:
        return None
    url, expires_at = link
    return telegram.completion_text(
        dataset_name=name,
        row_count=export.row_count or 0,
        url=url,
        label=FORMAT_LABELS.get(export.format, export.format.upper()),
        lifetime=expires_at - now,
    )


def download_link(
    export: Export, *, storage: S3BucketMethods, presign_ttl_seconds: int, now: datetime
) -> tuple[str, datetime] | None:
    """A signed URL of the file and when it stops working: `now + presign_ttl_seconds`, capped by the
    file's life (`object_expires_at`), so a link never outlives its file. None when there is no file.

    A SUPERSEDED export still has its file (a newer one exists); the gateway asks for COMPLETED ones.
    """
    finished = (ExportStatus.COMPLETED.value, ExportStatus.SUPERSEDED.value)
    if export.status not in finished or not export.s3_key:
        return None
    expires_at = now + timedelta(seconds=presign_ttl_seconds)
    if export.object_expires_at is not None:
        expires_at = min(expires_at, export.object_expires_at)
    ttl = int((expires_at - now).total_seconds())
    if ttl <= 0:
        return None
    spec = stored_spec(export.params)  # an export or a package
    url = storage.presign(
        export.s3_key, ttl_seconds=ttl, filename=spec.download_filename, content_type=spec.output.content_type
    )
    return url, expires_at


def dataset_name(catalog: Catalog, dataset_id: str) -> str:
    try:
        return catalog.get(dataset_id).name
    except CatalogError:
        return dataset_id
