"""The download links the gateway hands out, verified by an independent SigV4 implementation
(`export_engine_tests/sigv4.py`): right key, right signature, and never outliving the file."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from api.services.export_reads import signed_download
from export_engine.core.export_spec import ExportSpec
from export_engine.delivery.bucket import S3Storage
from export_engine_tests import sigv4
from export_engine_tests.helpers import export_row


def _storage(settings) -> S3Storage:
    return S3Storage.from_settings(settings)


def _completed(spec: ExportSpec, *, expires_at: datetime):
    ref = str(uuid.uuid4())
    return export_row(
        spec, ref, status="COMPLETED", s3_key=spec.object_key(ref, "run-1"), object_expires_at=expires_at
    )


def test_a_download_link_carries_a_valid_sigv4_signature_and_its_ttl(settings):
    storage = _storage(settings)
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2019, 1, 31), owner="sig-owner")
    now = datetime.now(UTC)
    export = _completed(spec, expires_at=now + timedelta(days=3))

    url, expires_at = signed_download(export, storage=storage, ttl_seconds=3600, now=now)

    secret = settings.aws_secret_access_key.get_secret_value()
    checked = sigv4.verify(url, secret_key=secret)
    assert checked.valid_signature
    assert checked.access_key == settings.aws_access_key_id
    assert checked.expires_in == timedelta(seconds=3600)
    assert abs(checked.expires_at - expires_at) < timedelta(seconds=5)
    assert f"/{storage.bucket}/{export.s3_key}" in url


def test_a_link_is_capped_at_the_files_life(settings):
    storage = _storage(settings)
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2019, 1, 31), owner="sig-owner")
    now = datetime.now(UTC)
    export = _completed(spec, expires_at=now + timedelta(minutes=20))

    url, expires_at = signed_download(export, storage=storage, ttl_seconds=24 * 3600, now=now)

    checked = sigv4.verify(url, secret_key=settings.aws_secret_access_key.get_secret_value())
    assert checked.valid_signature and expires_at == export.object_expires_at
    assert checked.expires_in == timedelta(minutes=20)


def test_tampering_or_the_wrong_secret_is_detected(settings):
    """The checker can fail: a changed key, a lengthened expiry or another secret all break it."""
    storage = _storage(settings)
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2019, 1, 31), owner="sig-owner")
    now = datetime.now(UTC)
    export = _completed(spec, expires_at=now + timedelta(days=1))
    url, _ = signed_download(export, storage=storage, ttl_seconds=600, now=now)
    secret = settings.aws_secret_access_key.get_secret_value()

    assert sigv4.verify(url, secret_key=secret).valid_signature
    assert not sigv4.verify(url.replace("run-1", "run-2"), secret_key=secret).valid_signature
    assert not sigv4.verify(
        url.replace("X-Amz-Expires=600", "X-Amz-Expires=6000"), secret_key=secret
    ).valid_signature
    assert not sigv4.verify(url, secret_key=secret + "x").valid_signature


def test_links_are_signed_for_the_public_endpoint_when_one_is_set(settings):
    """Services reach S3 inside the network; users get links for the host they can reach."""
    public = settings.model_copy(update={"s3_public_endpoint_url": "https://downloads.example.com"})
    storage = S3Storage.from_settings(public)
    spec = ExportSpec("transactions", date(2019, 1, 1), date(2019, 1, 31), owner="sig-owner")
    now = datetime.now(UTC)
    export = _completed(spec, expires_at=now + timedelta(days=3))

    url, _ = signed_download(export, storage=storage, ttl_seconds=600, now=now)

    assert url.startswith(f"https://downloads.example.com/{storage.bucket}/{export.s3_key}?")
    assert sigv4.verify(url, secret_key=settings.aws_secret_access_key.get_secret_value()).valid_signature
    assert storage.exists("exports/nothing-here") is False  # the services still talk to S3_ENDPOINT_URL
