"""Malformed or hostile input: a 4xx with a message a person understands, and nothing written."""

from __future__ import annotations

import time

import jwt
import pytest

from export_engine.settings import DEV_JWT_SECRET

pytestmark = pytest.mark.e2e

GOOD = {"table_name": "transactions", "date_from": "2024-01-01", "date_to": "2024-01-31"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**GOOD, "table_name": "pg_shadow"}, "unknown table_name 'pg_shadow'; valid names: "),
        ({**GOOD, "table_name": "transactions; DROP TABLE exports"}, "unknown table_name"),
        ({**GOOD, "date_from": "2024-02-30"}, "date_from: '2024-02-30' is not a real calendar date"),
        (
            {**GOOD, "date_to": "31/01/2024"},
            "date_to: must be a date written as YYYY-MM-DD, got '31/01/2024'",
        ),
        ({**GOOD, "date_from": "2024-03-01"}, "date_from (2024-03-01) is after date_to (2024-01-31)"),
        ({**GOOD, "format": "exe"}, "format: must be one of"),
        ({**GOOD, "force_refresh": "please"}, "force_refresh: Input should be a valid boolean"),
        ({"date_from": "2024-01-01", "date_to": "2024-01-31"}, "table_name: Field required"),
        ({**GOOD, "owner": "demo-user-2"}, "owner: unknown field"),
        ([1, 2, 3], "Input should be a valid dictionary"),
    ],
)
def test_invalid_bodies_are_422_and_write_nothing(api, body, message):
    before = api.export_count()
    response = api.http.post("/export", json=body, headers=api.headers("demo-user-1"))
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"], response.json()
    assert api.export_count() == before


def test_body_that_is_not_json(api):
    before = api.export_count()
    response = api.http.post(
        "/export",
        content=b"{not json",
        headers={**api.headers("demo-user-1"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "request body is not valid JSON"
    assert api.export_count() == before


def _token(claims: dict, key: str | None = DEV_JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Authorization header must be 'Bearer <JWT>'"),
        ({"Authorization": "Bearer garbage"}, "bearer token is malformed"),
        (
            {"Authorization": "Bearer " + _token({"sub": "demo-user-1", "exp": int(time.time()) - 5})},
            "token has expired",
        ),
        (
            {
                "Authorization": "Bearer "
                + _token({"sub": "demo-user-1", "exp": int(time.time()) + 600}, key="forged-" * 6)
            },
            "token signature is invalid",
        ),
        (
            {
                "Authorization": "Bearer "
                + _token({"sub": "demo-user-1", "exp": int(time.time()) + 600}, None, "none")
            },
            "token algorithm 'none' is not accepted",
        ),
    ],
)
@pytest.mark.parametrize("method", ["post", "get"])
def test_missing_or_bad_tokens_are_401_and_write_nothing(api, headers, message, method):
    before = api.export_count()
    if method == "post":
        response = api.http.post("/export", json=GOOD, headers=headers)
    else:
        response = api.http.get("/export/00000000-0000-0000-0000-000000000000", headers=headers)
    assert response.status_code == 401, response.text
    assert message in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert api.export_count() == before


@pytest.mark.parametrize(
    "reference_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "' OR 1=1 --"]
)
def test_unknown_export_is_404(api, reference_id):
    response = api.get("demo-user-1", reference_id)
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_healthz_needs_no_token(api):
    response = api.http.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
