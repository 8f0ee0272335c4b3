"""Hostile input found after the property-based run (issue 28): every answer keeps the error contract.

- a correctly signed token whose `exp` does not fit a float was a plain-text 500 on every endpoint;
- any unexpected exception was Starlette's plain-text 500, not the documented `ErrorBody`;
- a UTF-16 body was accepted (202) although only UTF-8 JSON is;
- JSON nested 5,000 levels deep was refused as "not valid JSON (it must be UTF-8 encoded)";
- `OPTIONS`/`PUT /export/stream` named DELETE and GET as allowed, and `GET /export/stream` was a 404
  "export 'stream' not found".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError

from api.deps import get_session
from api.main import create_app
from export_engine.settings import DEV_JWT_SECRET
from export_engine_tests.api.conftest import NoExports, auth, gateway_settings

EXPORT = {"table_name": "transactions", "date_from": "2024-01-01", "date_to": "2024-01-31"}
TOO_LONG = (
    "token lives too long: it expires more than 604800 seconds from now "
    "(JWT_MAX_LIFETIME_SECONDS); ask for a shorter-lived token"
)


def _signed(payload: str) -> str:
    """An HS256 token over `payload` exactly as written (PyJWT would refuse to encode some of these)."""

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(payload.encode())
    signature = hmac.new(DEV_JWT_SECRET.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


@pytest.mark.parametrize(
    ("exp", "detail"),
    [
        ("1" + "0" * 400, TOO_LONG),  # an integer no float can hold
        ("1e400", "token is invalid: Expiration Time claim (exp) must be an integer."),
    ],
)
def test_a_signed_token_whose_exp_overflows_is_a_401_with_the_error_body(make_client, exp, detail):
    client = make_client()
    token = _signed(f'{{"sub": "alice", "exp": {exp}}}')
    for path in ("/datasets", "/export"):
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, response.text
        assert response.json() == {"detail": detail, "errors": []}
        assert response.headers["www-authenticate"] == "Bearer"


def test_an_exp_without_a_lifetime_limit_is_accepted_however_far(make_client):
    client = make_client(jwt_max_lifetime_seconds=None)
    token = jwt.encode({"sub": "alice", "exp": 10**400}, DEV_JWT_SECRET, algorithm="HS256")
    assert client.get("/datasets", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def _app_that_breaks() -> TestClient:
    app: FastAPI = create_app(gateway_settings())
    app.dependency_overrides[get_session] = NoExports

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug with secret internals in its message")

    @app.get("/boom/db")
    def boom_db() -> None:
        raise DBAPIError("SELECT 1", {}, Exception("disk full"), connection_invalidated=False)

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("path", ["/boom", "/boom/db"])
def test_an_unexpected_error_is_a_500_with_the_error_body_and_no_internals(path):
    response = _app_that_breaks().get(path)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "detail": "the server failed to answer this request; it was logged, retry later",
        "errors": [],
    }


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_json_body_that_is_not_utf8_is_a_422(make_client, launcher, encoding):
    client = make_client()
    body = json.dumps(EXPORT).encode(encoding)
    response = client.post("/export", content=body, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": "request body is not valid JSON (it must be UTF-8 encoded)",
        "errors": [{"field": "body", "message": "not valid UTF-8 JSON"}],
    }
    assert launcher.submitted == []


def test_json_nested_too_deeply_is_refused_for_what_it_is(make_client, launcher):
    client = make_client()
    body = b"[" * 5000 + b"]" * 5000
    response = client.post("/export", content=body, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": "request body is nested too deeply to parse; send a flat JSON object",
        "errors": [{"field": "body", "message": "nested too deeply"}],
    }
    assert launcher.submitted == []


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("authorized", [True, False])
def test_only_post_is_allowed_on_the_stream_path(make_client, method, authorized):
    client = make_client()
    response = client.request(method, "/export/stream", headers=auth() if authorized else {})
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST"
    assert response.json() == {
        "detail": f"{method} is not allowed on /export/stream; allowed: POST",
        "errors": [],
    }


def test_an_export_id_path_still_answers_for_any_other_id(make_client):
    client = make_client()
    for reference_id in ("streams", "stream2", "not-a-uuid"):
        response = client.get(f"/export/{reference_id}", headers=auth())
        assert response.status_code == 404
        assert response.json() == {"detail": f"export {reference_id!r} not found", "errors": []}
    assert client.get("/export/stream/status", headers=auth()).status_code == 404
