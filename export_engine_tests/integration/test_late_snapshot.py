"""An older snapshot that finishes after a newer one of the same request: it is SUPERSEDED the moment it
completes, and its owner was just sent `export.completed`. Review 2026-12-07 N2: `/download` answered
409 "only a COMPLETED export has a file" for ever, while Telegram linked the same file. A SUPERSEDED
export keeps its file until retention expires it, so the gateway serves it like a COMPLETED one.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select

from api.security import Principal
from api.services.export_reads import download_location, signed_download
from export_engine.core.export_spec import ExportSpec
from export_engine.db.models import Export, ExportEvent
from export_engine.db.session import db_now, session_factory
from export_engine.delivery.bucket import S3Storage
from export_engine.lifecycle import transitions
from export_engine_tests.helpers import export_row

pytestmark = pytest.mark.integration
STALE = timedelta(seconds=30)


def test_an_older_snapshot_that_finishes_late_can_still_be_downloaded(settings):
    sessions = session_factory(settings.database_url)
    storage = S3Storage.from_settings(settings)
    owner = f"late-{uuid.uuid4()}"
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2019, 1, 31), owner=owner)
    older, newer = str(uuid.uuid4()), str(uuid.uuid4())
    with sessions.begin() as s:
        s.add_all([export_row(spec, ref, status="PENDING") for ref in (older, newer)])
    for ref, run in ((older, "run-older"), (newer, "run-newer")):
        with sessions.begin() as s:
            assert transitions.start(s, ref, run, stale_after=STALE) is not None
    older_key, older_bytes = spec.object_key(older, "run-older"), b"id,amount\n1,older snapshot\n"
    storage.client.put_object(Bucket=storage.bucket, Key=older_key, Body=older_bytes)
    for ref, run, key in ((newer, "run-newer", "k-newer"), (older, "run-older", older_key)):
        with sessions.begin() as s:  # the newer snapshot finishes first
            assert transitions.complete(
                s, ref, run, s3_key=key, row_count=1, file_size_bytes=len(older_bytes), retention=STALE * 100
            )

    with sessions() as s:
        late = s.get(Export, older)
        events = s.scalars(select(ExportEvent.type).where(ExportEvent.reference_id == older)).all()
        assert late.status == "SUPERSEDED"
        assert "export.completed" in events  # its owner was told the file is there
        url = download_location(
            session=s, principal=Principal(owner), reference_id=older, storage=storage, ttl_seconds=600
        )
        signed = signed_download(late, storage=storage, ttl_seconds=600, now=db_now(s))

    assert httpx.get(url).content == older_bytes
    assert signed is not None and httpx.get(signed[0]).content == older_bytes
