"""Standard Webhooks signatures (https://www.standardwebhooks.com/): `whsec_` secrets, `v1` HMAC-SHA256.

The signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`; the key is the secret's base64
part decoded. During a rotation's overlap both the new and the old secret sign, space-separated, and a
receiver accepts any one it knows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def headers(msg_id: str, timestamp: int, body: bytes, secrets_: list[str]) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
    }
