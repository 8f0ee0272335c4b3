"""Request bodies are capped before they are parsed; a date range has a maximum span per dataset."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from export_engine.settings import Settings
from export_engine_tests.api.conftest import auth

LIMIT = 4096
TOO_LARGE = f"request body is larger than {LIMIT} bytes (MAX_REQUEST_BODY_BYTES); send a smaller request"


def _body(size: int) -> bytes:
    """A valid export request padded with spaces to `size` bytes (JSON allows trailing whitespace)."""
    body = json.dumps({"table_name": "transactions", "date_from": "2024-01-01", "date_to": "2024-01-31"})
    return body.encode().ljust(size)


def test_a_body_past_the_limit_is_413_before_it_is_parsed(make_client, launcher):
    client = make_client(max_request_body_bytes=LIMIT)
    headers = {**auth(), "Content-Type": "application/json"}
    # Not JSON at all: had it been parsed, the answer would be 422 "not valid JSON".
    response = client.post("/export", content=b"{" * (LIMIT + 1), headers=headers)
    assert response.status_code == 413
    assert response.json() == {"detail": TOO_LARGE, "errors": []}
    assert launcher.submitted == []


def test_a_chunked_body_without_content_length_is_cut_off_at_the_limit(make_client, launcher):
    client = make_client(max_request_body_bytes=LIMIT)
    sent: list[int] = []

    def chunks():
        for _ in range(64):  # 64 KiB offered in 1 KiB chunks
            sent.append(1024)
            yield b"{" * 1024

    response = client.post(
        "/export", content=chunks(), headers={**auth(), "Content-Type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    assert response.json() == {"detail": TOO_LARGE, "errors": []}
    assert launcher.submitted == []


def test_a_body_at_the_limit_is_parsed_and_validated(make_client):
    client = make_client(max_request_body_bytes=LIMIT)
    body = _body(LIMIT).replace(b'"2024-01-31"', b'"2023-12-31"')  # date_to before date_from
    response = client.post("/export", content=body, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"] == "date_to: date_from (2024-01-01) is after date_to (2023-12-31)"


def test_the_default_limit_is_one_mebibyte():
    assert Settings.model_fields["max_request_body_bytes"].default == 1024 * 1024


def _post(client, date_from: str, date_to: str, table_name: str = "transactions"):
    body = {"table_name": table_name, "date_from": date_from, "date_to": date_to}
    return client.post("/export", json=body, headers=auth())


def test_a_range_past_the_configured_span_is_422_naming_the_limit(make_client, launcher):
    client = make_client(export_max_span_days=366)
    response = _post(client, "2023-01-01", "2024-01-01")  # 366 days, both ends counted: not refused for it
    assert "spans" not in response.text, response.text
    response = _post(client, "2023-01-01", "2024-01-02")  # 367 days
    assert response.status_code == 422
    assert response.json() == {
        "detail": "date range: 2023-01-01..2024-01-02 spans 367 days; dataset 'transactions' allows at most "
        "366 days per export: split it into several exports",
        "errors": [],
    }
    response = _post(client, "2024-01-01", "9999-12-30")  # the last date the engine can export
    assert response.status_code == 422 and "allows at most 366 days" in response.json()["detail"]
    assert launcher.submitted == []


def test_the_default_span_is_about_ten_years(make_client):
    assert Settings.model_fields["export_max_span_days"].default == 3660
    response = _post(make_client(), "2000-01-01", "2024-12-31")
    assert response.status_code == 422
    assert "allows at most 3660 days" in response.json()["detail"]


def test_a_dataset_may_set_its_own_span_in_the_catalog(make_client, tmp_path: Path):
    shipped = Settings.model_fields["catalog_path"].default
    catalog = yaml.safe_load(shipped.read_text())
    catalog["datasets"]["monthly_trends"]["max_span_days"] = 31
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    client = make_client(catalog_path=path, export_max_span_days=366)

    response = _post(client, "2024-01-01", "2024-02-01", table_name="monthly_trends")  # 32 days
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "date range: 2024-01-01..2024-02-01 spans 32 days; dataset 'monthly_trends' allows at most "
        "31 days per export: split it into several exports"
    )
    response = _post(client, "2024-01-01", "2024-02-01")  # transactions: the default, 366
    assert "spans" not in response.text
