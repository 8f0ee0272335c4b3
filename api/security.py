"""Bearer JWT verification: HS256 only, `sub` and `exp` required."""

from __future__ import annotations

from dataclasses import dataclass

import jwt


@dataclass(frozen=True)
class Principal:
    """The caller; `subject` scopes every query to the caller's own rows."""

    subject: str


class AuthError(Exception):
    """The request carries no usable credentials; the message says why."""


def decode_token(token: str, *, secret: str, algorithm: str) -> Principal:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise AuthError("bearer token is malformed") from exc
    if header.get("alg") != algorithm:
        raise AuthError(f"token algorithm {header.get('alg')!r} is not accepted; use {algorithm}")
    try:
        claims = jwt.decode(token, secret, algorithms=[algorithm], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token has expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise AuthError("token signature is invalid") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"token is missing the {exc.claim!r} claim") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"token is invalid: {exc}") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise AuthError("token subject must be a non-empty string")
    return Principal(subject=subject)


def issue_token(subject: str, *, secret: str, algorithm: str = "HS256", ttl_seconds: int = 24 * 3600) -> str:
    """Dev and test helper: a token for `subject` (production tokens come from your identity provider)."""
    import time

    now = int(time.time())
    return jwt.encode({"sub": subject, "iat": now, "exp": now + ttl_seconds}, secret, algorithm=algorithm)
