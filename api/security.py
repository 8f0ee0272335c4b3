"""Bearer JWT verification: one pinned algorithm, `sub` and `exp` required, `aud`/`iss` when configured.

The key is an HMAC secret (HS256/384/512), a PEM public key, or the identity provider's JWKS
(RS256/ES256; keys chosen by the token's `kid`; PyJWT's `PyJWKClient` caches the key set 5 minutes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt

if TYPE_CHECKING:
    from export_engine.settings import Settings

MAX_SUBJECT_LENGTH = 255  # the owner is stored and logged; a 10,000-character subject is not an owner


@dataclass(frozen=True)
class Principal:
    """The caller; `subject` scopes every query to the caller's own rows."""

    subject: str


class AuthError(Exception):
    """The request carries no usable credentials; the message says why."""


class AuthUnavailable(Exception):
    """The identity provider's keys could not be fetched: not the caller's fault (503)."""


@dataclass(frozen=True)
class TokenPolicy:
    """How tokens are verified; `key` is the HMAC secret or the PEM public key (unset with a JWKS URL)."""

    algorithm: str
    key: str | None = None
    jwks_url: str | None = None
    audience: str | None = None
    issuer: str | None = None
    max_lifetime_seconds: int | None = None  # a token whose `exp` is further away is refused

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenPolicy:
        hmac = settings.jwt_algorithm.startswith("HS")
        return cls(
            algorithm=settings.jwt_algorithm,
            key=settings.jwt_secret.get_secret_value() if hmac else settings.jwt_public_key,
            jwks_url=None if hmac else settings.jwt_jwks_url,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
        )


class TokenVerifier:
    """Built once per app, so the JWKS client's key cache lives as long as the gateway."""

    def __init__(self, policy: TokenPolicy) -> None:
        self.policy = policy
        self._jwks = jwt.PyJWKClient(policy.jwks_url, lifespan=300, timeout=5) if policy.jwks_url else None

    def _key(self, token: str) -> object:
        if self._jwks is None:
            return self.policy.key
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthUnavailable(f"the identity provider's keys could not be fetched: {exc}") from exc
        except (jwt.PyJWKClientError, jwt.DecodeError) as exc:
            raise AuthError(f"token signing key is not known: {exc}") from exc

    def decode(self, token: str) -> Principal:
        policy = self.policy
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise AuthError("bearer token is malformed") from exc
        if header.get("alg") != policy.algorithm:
            raise AuthError(f"token algorithm {header.get('alg')!r} is not accepted; use {policy.algorithm}")
        required = ["exp", "sub"] + ["aud"] * bool(policy.audience) + ["iss"] * bool(policy.issuer)
        try:
            claims = jwt.decode(
                token,
                self._key(token),  # type: ignore[arg-type]
                algorithms=[policy.algorithm],
                audience=policy.audience,
                issuer=policy.issuer,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token has expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthError("token signature is invalid") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token is missing the {exc.claim!r} claim") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError(f"token audience is not accepted; expected {policy.audience!r}") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(f"token issuer is not accepted; expected {policy.issuer!r}") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"token is invalid: {exc}") from exc
        limit = policy.max_lifetime_seconds
        # Integers: a signed `exp` of 10**400 is a valid JWT integer but overflows a float.
        if limit is not None and int(claims["exp"]) - int(time.time()) > limit:
            raise AuthError(
                f"token lives too long: it expires more than {limit} seconds from now "
                "(JWT_MAX_LIFETIME_SECONDS); ask for a shorter-lived token"
            )
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise AuthError("token subject must be a non-empty string")
        if len(subject) > MAX_SUBJECT_LENGTH:
            raise AuthError(f"token subject must be at most {MAX_SUBJECT_LENGTH} characters")
        return Principal(subject=subject)


def decode_token(
    token: str, *, secret: str, algorithm: str, audience: str | None = None, issuer: str | None = None
) -> Principal:
    """One-off verification with an HMAC secret or a PEM public key (tests, tools)."""
    return TokenVerifier(TokenPolicy(algorithm, key=secret, audience=audience, issuer=issuer)).decode(token)


def issue_token(
    subject: str,
    *,
    secret: str,
    algorithm: str = "HS256",
    ttl_seconds: int = 24 * 3600,
    **claims: object,
) -> str:
    """Dev and test helper: a token for `subject` (production tokens come from your identity provider)."""
    now = int(time.time())
    payload = {"sub": subject, "iat": now, "exp": now + ttl_seconds, **claims}
    return jwt.encode(payload, secret, algorithm=algorithm)
