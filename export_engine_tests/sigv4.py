"""An independent check of SigV4 presigned URLs, written from AWS's specification ("Authenticating
Requests: Using Query Parameters", Signature Version 4), not from botocore: the local S3 server accepts
any signature, so without this no test could catch a signing bug."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlsplit


@dataclass(frozen=True)
class PresignedUrl:
    access_key: str
    signed_at: datetime
    expires_in: timedelta
    region: str
    valid_signature: bool

    @property
    def expires_at(self) -> datetime:
        return self.signed_at + self.expires_in


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def verify(url: str, *, secret_key: str, method: str = "GET") -> PresignedUrl:
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    values = dict(params)
    if values.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise ValueError(f"not a SigV4 presigned URL: {values.get('X-Amz-Algorithm')!r}")
    access_key, date, region, service, terminal = values["X-Amz-Credential"].split("/")
    if service != "s3" or terminal != "aws4_request":
        raise ValueError("credential scope is not s3/aws4_request")
    signed_headers = values["X-Amz-SignedHeaders"]
    if signed_headers != "host":
        raise ValueError(f"a download link should sign only the host, not {signed_headers!r}")

    canonical_query = "&".join(
        f"{_encode(k)}={_encode(v)}" for k, v in sorted(params) if k != "X-Amz-Signature"
    )
    canonical_request = "\n".join(
        [
            method,
            parts.path or "/",
            canonical_query,
            f"host:{parts.netloc}\n",
            signed_headers,
            "UNSIGNED-PAYLOAD",
        ]
    )
    amz_date = values["X-Amz-Date"]
    scope = f"{date}/{region}/{service}/{terminal}"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), date), region), service), terminal)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return PresignedUrl(
        access_key=access_key,
        signed_at=datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
        expires_in=timedelta(seconds=int(values["X-Amz-Expires"])),
        region=region,
        valid_signature=hmac.compare_digest(expected, values["X-Amz-Signature"]),
    )
