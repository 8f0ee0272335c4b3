"""Bearer tokens: a bounded subject, `aud`/`iss` when configured, public keys and a JWKS endpoint."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devstack.processes import free_port
from export_engine.settings import DEV_JWT_SECRET
from export_engine_tests.api.conftest import auth


def _status_and_detail(response) -> tuple[int, str]:
    return response.status_code, response.json().get("detail") if response.status_code != 200 else ""


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("a", (200, "")),
        ("u" * 255, (200, "")),
        ("u" * 256, (401, "token subject must be at most 255 characters")),
        ("u" * 10_000, (401, "token subject must be at most 255 characters")),
        ("", (401, "token subject must be a non-empty string")),
    ],
)
def test_the_subject_is_one_to_255_characters(make_client, subject, expected):
    client = make_client()
    token = jwt.encode({"sub": subject, "exp": int(time.time()) + 60}, DEV_JWT_SECRET, algorithm="HS256")
    response = client.get("/datasets", headers={"Authorization": f"Bearer {token}"})
    assert _status_and_detail(response) == expected


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"aud": "exports", "iss": "https://idp.example"}, (200, "")),
        ({"iss": "https://idp.example"}, (401, "token is missing the 'aud' claim")),
        ({"aud": "exports"}, (401, "token is missing the 'iss' claim")),
        (
            {"aud": "billing", "iss": "https://idp.example"},
            (401, "token audience is not accepted; expected 'exports'"),
        ),
        (
            {"aud": "exports", "iss": "https://evil.example"},
            (401, "token issuer is not accepted; expected 'https://idp.example'"),
        ),
    ],
)
def test_audience_and_issuer_are_checked_when_set(make_client, claims, expected):
    client = make_client(jwt_audience="exports", jwt_issuer="https://idp.example")
    assert _status_and_detail(client.get("/datasets", headers=auth(**claims))) == expected


def test_without_audience_and_issuer_settings_a_plain_token_is_enough(make_client):
    assert make_client().get("/datasets", headers=auth()).status_code == 200


def test_openapi_declares_the_bearer_scheme(make_client):
    document = make_client().get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# -- asymmetric keys ------------------------------------------------------------------------------


def _pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _token(key, algorithm: str, *, kid: str | None = None, subject: str = "alice") -> str:
    headers = {"kid": kid} if kid else None
    claims = {"sub": subject, "exp": int(time.time()) + 60}
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def test_es256_with_a_public_key(make_client):
    key = ec.generate_private_key(ec.SECP256R1())
    client = make_client(jwt_algorithm="ES256", jwt_public_key=_pem(key))
    ok = client.get("/datasets", headers={"Authorization": f"Bearer {_token(key, 'ES256')}"})
    assert ok.status_code == 200, ok.text
    other = ec.generate_private_key(ec.SECP256R1())
    forged = client.get("/datasets", headers={"Authorization": f"Bearer {_token(other, 'ES256')}"})
    assert _status_and_detail(forged) == (401, "token signature is invalid")
    # The published dev secret signs nothing here: an HS256 token is refused by its header.
    hs = client.get("/datasets", headers=auth())
    assert _status_and_detail(hs) == (401, "token algorithm 'HS256' is not accepted; use ES256")


class _Jwks:
    """A local identity provider: serves a JWKS at /jwks.json and counts the fetches."""

    def __init__(self, keys: dict[str, rsa.RSAPrivateKey]) -> None:
        self.keys = keys
        self.fetches = 0
        jwks = {
            "keys": [
                {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())), "kid": kid, "use": "sig"}
                for kid, k in keys.items()
            ]
        }
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp() -> Iterator[_Jwks]:
    server = _Jwks({"key-1": rsa.generate_private_key(public_exponent=65537, key_size=2048)})
    yield server
    server.close()


def test_rs256_tokens_verified_against_the_identity_providers_jwks(make_client, idp):
    client = make_client(jwt_algorithm="RS256", jwt_jwks_url=idp.url, jwt_audience="exports")
    key = idp.keys["key-1"]

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    good = jwt.encode(
        {"sub": "alice", "aud": "exports", "exp": int(time.time()) + 60},
        key,
        algorithm="RS256",
        headers={"kid": "key-1"},
    )
    assert client.get("/datasets", headers=bearer(good)).status_code == 200
    assert client.get("/datasets", headers=bearer(good)).status_code == 200
    assert idp.fetches == 1  # the key set is cached, not fetched per request

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {"sub": "alice", "aud": "exports", "exp": int(time.time()) + 60},
        stranger,
        algorithm="RS256",
        headers={"kid": "key-1"},
    )
    assert _status_and_detail(client.get("/datasets", headers=bearer(forged))) == (
        401,
        "token signature is invalid",
    )
    no_aud = _token(key, "RS256", kid="key-1")
    assert _status_and_detail(client.get("/datasets", headers=bearer(no_aud))) == (
        401,
        "token is missing the 'aud' claim",
    )
    unknown_kid = jwt.encode(
        {"sub": "alice", "aud": "exports", "exp": int(time.time()) + 60},
        key,
        algorithm="RS256",
        headers={"kid": "key-2"},
    )
    status, detail = _status_and_detail(client.get("/datasets", headers=bearer(unknown_kid)))
    assert status == 401 and detail.startswith("token signing key is not known"), detail


def test_an_unreachable_jwks_is_503_not_401(make_client):
    client = make_client(jwt_algorithm="RS256", jwt_jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = client.get("/datasets", headers={"Authorization": f"Bearer {_token(key, 'RS256', kid='k')}"})
    assert _status_and_detail(response) == (
        503,
        "the identity provider is unavailable; retry in a few seconds",
    )
    assert response.headers["retry-after"] == "5"
